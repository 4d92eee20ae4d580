"""One error root for everything that stops ogverify from *performing* its work.

Findings ("output y differs by 3 ULP") are data in a Report; an exception here means the
work itself could not be done. Each error carries the exit code the CLI should use and a
one-line message; ``diagnostics()`` is the text shown for it, the detail only when asked.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The stable exit codes of the ogverify command line."""

    VERIFIED = 0
    FAILED = 1
    USAGE = 2
    CANNOT_VERIFY = 3
    INTERRUPTED = 130  # Ctrl-C: the shell's 128 + SIGINT
    TERMINATED = 143  # SIGTERM: 128 + SIGTERM


# What each exit code means, in the words --help, the man page and the README all use.
EXIT_MEANINGS: dict[ExitCode, tuple[str, str]] = {
    ExitCode.VERIFIED: ("verified", "every check held"),
    ExitCode.FAILED: ("verification failed",
                      "the evidence does not hold: tampering, a bad or untrusted signature, outputs not reproduced"),
    ExitCode.USAGE: ("usage error", "bad arguments, options or input files"),
    ExitCode.CANNOT_VERIFY: ("could not verify", "unreadable bundle, unavailable execution provider, internal error"),
}


class OgverifyError(Exception):
    """Root of every error ogverify raises on purpose.

    Args:
        message: one line saying what went wrong, naming the artifact or argument.
        detail: optional further explanation, shown after the message.
    """

    exit_code: ExitCode = ExitCode.CANNOT_VERIFY

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def diagnostics(self, *, verbose: bool = False) -> str:
        """What a person is shown: ``error: <message>`` on one line; with ``verbose``, the detail after it.

        The command line prints exactly this (verbose under ``OGVERIFY_DEBUG``).
        """
        line = f"error: {self.message}"
        return f"{line}\n{self.detail}" if verbose and self.detail else line


class UsageError(OgverifyError):
    """The caller asked for something impossible: bad argument, missing file, wrong shape."""

    exit_code = ExitCode.USAGE


class BundleError(OgverifyError):
    """A bundle cannot be read: not a bundle, malformed, unsafe, or over a limit."""

    exit_code = ExitCode.CANNOT_VERIFY


class EvidenceMismatchError(OgverifyError):
    """The bundle's pieces contradict each other: the evidence does not hold (a FAIL, exit 1).

    Different from not being able to check the evidence (``BundleError``, exit 3): a tensor that
    is not what the manifest declares, a model file name pointing outside its folder, a blob
    whose bytes do not match its digest.
    """

    exit_code = ExitCode.FAILED


class TargetExistsError(UsageError):
    """The path to write is taken, and replacing it was not asked for.

    The message speaks Python (``overwrite=True``); ``command_line()`` is the same error in the
    command line's words (``--force``).
    """

    def __init__(self, target: object, state: str = "already exists") -> None:
        super().__init__(f"{target} {state} (pass overwrite=True to replace it)")
        self.target = target
        self.state = state

    def command_line(self) -> UsageError:
        return UsageError(f"{self.target} {self.state} (use --force to replace it)")


class KeyFileError(UsageError):
    """A key file is missing, unreadable, or not an ed25519 key."""


class ModelError(UsageError):
    """A model cannot be parsed or does not fit the tensors given for it."""


class ReplayError(OgverifyError):
    """Re-executing a model failed for a reason other than a numeric mismatch."""

    exit_code = ExitCode.CANNOT_VERIFY
