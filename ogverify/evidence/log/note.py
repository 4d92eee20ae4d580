"""C2SP signed notes (https://c2sp.org/signed-note) carrying C2SP tlog-checkpoints.

A note is UTF-8 text ending in a newline, a blank line, then one line per signature::

    <origin>\\n<tree size>\\n<base64 root hash>\\n[extension lines]\\n
    \\n
    — <key name> <base64(key hash[4] || Ed25519 signature[64])>\\n

The signature covers the text before the blank line, its final newline included. An Ed25519
key's hash is the first 4 bytes of ``SHA-256(key name || "\\n" || 0x01 || public key)``, so a
verifier that knows a public key matches it to the lines that may be its own and verifies those.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ogverify.errors import BundleError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALG_ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "  # EM DASH, space
# What a note may make a reader hold: Go's note package refuses more than 100 signatures too.
MAX_NOTE_BYTES = 1 << 20
MAX_SIGNATURES = 100
MAX_SIZE = (1 << 63) - 1
_NAME = re.compile(r"^[^\s+]+$")
_DECIMAL = re.compile(r"^(0|[1-9][0-9]{0,18})$")


class NoteError(BundleError):
    """A signed note or checkpoint is malformed (not merely unsigned by a trusted key)."""


def key_hash(name: str, public_key: bytes) -> bytes:
    """The 4-byte hash that names an Ed25519 key of ``name`` in signature lines."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def check_key_name(name: str) -> str:
    """``name``, if it is a valid key name (non-empty, no white space, no '+')."""
    if not _NAME.match(name) or not name.isprintable():
        raise NoteError(f"key name {name!r} is not valid (non-empty, no spaces, no '+')")
    return name


def verifier_key(name: str, public_key: bytes) -> str:
    """The verifier key string ``<name>+<hex key hash>+<base64(0x01 || key)>`` as Go's note package writes it."""
    encoded = base64.b64encode(bytes([ALG_ED25519]) + public_key).decode("ascii")
    return f"{check_key_name(name)}+{key_hash(name, public_key).hex()}+{encoded}"


def parse_verifier_key(text: str) -> tuple[str, bytes]:
    """(name, raw Ed25519 public key) of a verifier key string; its key hash must match."""
    parts = text.strip().split("+")
    if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{8}", parts[1]):
        raise NoteError("verifier key is not <name>+<hash>+<key>")
    name = check_key_name(parts[0])
    try:
        raw = base64.b64decode(parts[2], validate=True)
    except ValueError as exc:  # binascii.Error, or a non-ASCII character
        raise NoteError("verifier key is not valid base64") from exc
    if len(raw) != 33 or raw[0] != ALG_ED25519:
        raise NoteError("verifier key is not an Ed25519 key")
    if key_hash(name, raw[1:]).hex() != parts[1]:
        raise NoteError("verifier key's hash does not match its name and key")
    return name, raw[1:]


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: the key's name, its 4-byte hash, the signature bytes."""

    name: str
    key_hash: bytes
    signature: bytes


@dataclass(frozen=True)
class Note:
    """A parsed signed note: the signed text and its signature lines."""

    text: bytes
    signatures: tuple[NoteSignature, ...]


def _check_text(text: str) -> None:
    if any((ord(c) < 0x20 and c != "\n") or c == "\x7f" for c in text):
        raise NoteError("note text holds control characters")


def parse_note(raw: bytes) -> Note:
    """Split a signed note into its text and signature lines.

    Raises:
        NoteError: too large, not UTF-8, no blank line before the signatures, a malformed
            signature line, or more than ``MAX_SIGNATURES`` of them.
    """
    if len(raw) > MAX_NOTE_BYTES:
        raise NoteError(f"signed note is {len(raw)} bytes, over the {MAX_NOTE_BYTES}-byte limit")
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteError("signed note is not UTF-8") from exc
    _check_text(decoded)
    split = decoded.rfind("\n\n")
    if split < 0 or not decoded.endswith("\n"):
        raise NoteError("signed note has no blank line before its signatures")
    text, lines = decoded[: split + 1], decoded[split + 2 :].splitlines(keepends=True)
    if not lines:
        raise NoteError("signed note has no signatures")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"signed note has {len(lines)} signature lines, over the limit of {MAX_SIGNATURES}")
    signatures = []
    for line in lines:
        if not line.startswith(SIGNATURE_PREFIX) or not line.endswith("\n"):
            raise NoteError("signed note has a malformed signature line")
        fields = line[len(SIGNATURE_PREFIX) : -1].split(" ")
        if len(fields) != 2:
            raise NoteError("signed note has a malformed signature line")
        name = check_key_name(fields[0])
        try:
            blob = base64.b64decode(fields[1], validate=True)
        except ValueError as exc:  # binascii.Error, or a non-ASCII character
            raise NoteError(f"signature by {name!r} is not valid base64") from exc
        if len(blob) < 5:
            raise NoteError(f"signature by {name!r} is too short")
        signatures.append(NoteSignature(name, blob[:4], blob[4:]))
    return Note(text.encode("utf-8"), tuple(signatures))


def signature_line(text: bytes, name: str, key: Ed25519PrivateKey) -> str:
    """The line that signs ``text`` with ``key`` under ``name``."""
    public = key.public_key().public_bytes_raw()
    blob = key_hash(check_key_name(name), public) + key.sign(text)
    return f"{SIGNATURE_PREFIX}{name} {base64.b64encode(blob).decode('ascii')}\n"


def sign_note(text: bytes, signers: Sequence[tuple[str, Ed25519PrivateKey]]) -> bytes:
    """A signed note: ``text`` (ending in a newline), a blank line, one line per (name, key)."""
    if not text.endswith(b"\n") or b"\n\n" in text:
        raise ValueError("note text must end in a newline and hold no blank line")
    _check_text(text.decode("utf-8"))
    return text + b"\n" + "".join(signature_line(text, name, key) for name, key in signers).encode("utf-8")


def verified_by(note: Note, keys: Iterable[Ed25519PublicKey]) -> list[tuple[str, Ed25519PublicKey]]:
    """The (key name, key) of every signature of ``note`` that one of ``keys`` made."""
    from cryptography.exceptions import InvalidSignature

    publics = [(key, key.public_bytes_raw()) for key in keys]
    found = []
    for signature in note.signatures:
        for key, raw in publics:
            if key_hash(signature.name, raw) != signature.key_hash or len(signature.signature) != 64:
                continue
            try:
                key.verify(signature.signature, note.text)
            except InvalidSignature:
                continue
            found.append((signature.name, key))
    return found


@dataclass(frozen=True)
class Checkpoint:
    """A C2SP tlog-checkpoint: the log's origin, its tree size and root hash."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> bytes:
        """The checkpoint text that a note signs."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode("ascii"), *self.extensions]
        return ("\n".join(lines) + "\n").encode("utf-8")

    @classmethod
    def parse(cls, text: bytes) -> Checkpoint:
        """Parse a checkpoint body (a note's text).

        Raises:
            NoteError: fewer than three lines, an empty origin, a size that is not a canonical
                decimal below 2**63, or a root that is not 32 bytes of base64.
        """
        lines = text.decode("utf-8").split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("checkpoint has fewer than three lines")
        origin, size, root = lines[0], lines[1], lines[2]
        if not origin:
            raise NoteError("checkpoint has an empty origin line")
        if not _DECIMAL.match(size) or int(size) > MAX_SIZE:
            raise NoteError(f"checkpoint tree size {size[:40]!r} is not a decimal number below 2**63")
        try:
            digest = base64.b64decode(root, validate=True)
        except ValueError as exc:  # binascii.Error, or a non-ASCII character
            raise NoteError("checkpoint root hash is not valid base64") from exc
        if len(digest) != 32:
            raise NoteError("checkpoint root hash is not 32 bytes")
        return cls(origin, int(size), digest, tuple(lines[3:-1]))
