"""Fuzz the parsers that read untrusted bundle bytes: ``python -m tools.fuzz --minutes N``.

Targets (``--target``, default all, time shared between them):

- ``manifest``: ``Manifest.from_bytes`` (strict JSON, schema, canonical form).
- ``npy``: ``tensors.parse_npy`` (the tensor loader; never unpickles).
- ``tar``: ``open_bundle`` on a ``.ogb`` file, then every blob verified and every envelope checked.
- ``note``: an evidence log's signed checkpoint (C2SP signed note), parsed and verified.
- ``log-entry``: an evidence log's entry bundle and the record entries in it.
- ``log-proof``: the ``log-proof.json`` of a record exported from a log, checked against a manifest.

The property is the same for all three: the input is accepted, or refused with a ``BundleError``
(the exit-3 "cannot verify" path); any other exception is a bug. With atheris installed
(``pip install atheris``) coverage-guided libFuzzer runs each target in its own process; without
it, hypothesis generates and mutates inputs for the time given. A crashing input is written to
``tests/hostile/regressions/<target>/`` where ``tests/hostile/test_properties.py`` replays it on
every test run: commit it with the fix.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REGRESSIONS = ROOT / "tests" / "hostile" / "regressions"
TARGET_NAMES = ("manifest", "npy", "tar", "note", "log-entry", "log-proof")


# --- the targets ---------------------------------------------------------------------------------


def fuzz_manifest(data: bytes) -> None:
    """Parse ``data`` as manifest.json: accepted, or refused with a BundleError."""
    from ogverify.errors import BundleError
    from ogverify.evidence.manifest import Manifest

    try:
        manifest = Manifest.from_bytes(data)
    except BundleError:
        return
    # What was accepted must be exactly what the writer would produce.
    assert manifest.to_bytes() == data


def fuzz_npy(data: bytes) -> None:
    """Parse ``data`` as a bundle tensor: accepted (size consistent with the header) or refused."""
    from ogverify.errors import BundleError
    from ogverify.model.tensors import SUPPORTED_KINDS, parse_npy

    try:
        array = parse_npy(data, "fuzz")
    except BundleError:
        return
    assert array.dtype.kind in SUPPORTED_KINDS
    assert array.dtype.byteorder != ">"
    assert array.nbytes <= len(data)


_SCRATCH: Path | None = None
_SCRATCH_FOLDER: Path | None = None
# The folder a fuzzing run works in, made by the parent, shared with its children, removed by it.
SCRATCH_VARIABLE = "OGVERIFY_FUZZ_SCRATCH"


def scratch_folder() -> Path:
    """This run's scratch folder: the parent's (``OGVERIFY_FUZZ_SCRATCH``), or one of this process's
    own, removed when it exits (libFuzzer leaves by ``exit()``, past Python's clean-up: so the
    parent owns the folder whenever there is one)."""
    global _SCRATCH_FOLDER  # noqa: PLW0603 - one per process
    if _SCRATCH_FOLDER is None:
        given = os.environ.get(SCRATCH_VARIABLE)
        if given:
            _SCRATCH_FOLDER = Path(given)
        else:
            _SCRATCH_FOLDER = Path(tempfile.mkdtemp(prefix="ogverify-fuzz-"))
            atexit.register(shutil.rmtree, _SCRATCH_FOLDER, True)
    return _SCRATCH_FOLDER


def fuzz_tar(data: bytes) -> None:
    """Open ``data`` as a ``.ogb`` bundle, verify every blob and envelope: only BundleError may escape."""
    from ogverify.errors import BundleError
    from ogverify.evidence.bundle import open_bundle
    from ogverify.evidence.signing import verify_envelope

    global _SCRATCH  # noqa: PLW0603 - one scratch file per process, rewritten for each input
    if _SCRATCH is None:
        _SCRATCH = scratch_folder() / f"fuzz-{os.getpid()}.ogb"
    _SCRATCH.write_bytes(data)
    try:
        with open_bundle(_SCRATCH) as bundle:
            for _, artifact in bundle.manifest.artifacts():
                bundle.verify_blob(artifact)
            for name, raw in bundle.signature_envelopes.items():
                verify_envelope(name, raw, bundle.manifest_bytes, bundle.manifest, {})
    except BundleError:
        return


def fuzz_note(data: bytes) -> None:
    """Parse ``data`` as a signed checkpoint note and verify it: accepted, or refused with a NoteError."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from ogverify.evidence.log import note

    try:
        signed = note.parse_note(data)
        note.Checkpoint.parse(signed.text)
    except note.NoteError:
        return
    assert len(signed.signatures) <= note.MAX_SIGNATURES
    key = Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key()
    note.verified_by(signed, [key])


def fuzz_log_entry(data: bytes) -> None:
    """Read ``data`` as an entry bundle of up to 256 record leaves: each accepted or refused with a BundleError."""
    from ogverify.errors import BundleError
    from ogverify.evidence.log.layout import RecordEntry, decode_entries

    try:
        leaves = decode_entries(data, 1 + data[0] if data else 1, "fuzz")
    except BundleError:
        leaves = [data]
    for index, leaf in enumerate(leaves):
        try:
            entry = RecordEntry.parse(leaf, index)
        except BundleError:
            continue
        assert entry.leaf() == leaf


def fuzz_log_proof(data: bytes) -> None:
    """Check ``data`` as a bundle's log-proof.json: never raises, whatever the bytes."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from ogverify.evidence.log.attached import verify_log_proof

    key = Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key()
    result = verify_log_proof(data, {"inputs": [], "outputs": []}, [key])
    assert result.status in ("trusted", "untrusted", "invalid")


TARGETS: dict[str, Callable[[bytes], None]] = {
    "manifest": fuzz_manifest, "npy": fuzz_npy, "tar": fuzz_tar,
    "note": fuzz_note, "log-entry": fuzz_log_entry, "log-proof": fuzz_log_proof,
}


# --- seeds: honest inputs to mutate ----------------------------------------------------------------


@functools.cache
def seed_bundle_members() -> dict[str, bytes]:
    """The members of a small honest bundle (packed with claimed outputs: no onnxruntime run)."""
    import numpy as np

    from ogverify.packing.pack import pack
    from tests.fixtures import models

    with tempfile.TemporaryDirectory(prefix="ogverify-fuzz-seed-") as work:
        folder = Path(work)
        model = models.save(models.mlp(hidden=4, classes=2), folder / "m.onnx")
        x = np.arange(64, dtype=np.float32).reshape(4, 16)
        y = np.zeros((4, 2), np.float32)
        bundle = pack(model, folder / "b", inputs={"x": x}, claimed_outputs={"y": y})
        return {p.relative_to(bundle.path).as_posix(): p.read_bytes()
                for p in sorted(bundle.path.rglob("*")) if p.is_file()}


@functools.cache
def seed_log_inputs() -> dict[str, tuple[bytes, ...]]:
    """Honest log inputs: a signed checkpoint, an entry bundle, a bundle's log-proof.json."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from ogverify.evidence.log import merkle, note
    from ogverify.evidence.log.attached import LogProof
    from ogverify.evidence.log.layout import RecordEntry, TensorRef, TraceRef, ValueRef, encode_entries

    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    def tensor(name: str, digest: str, offset: int) -> TensorRef:
        return TensorRef(name, "float32", (1, 4), blake3=digest * 32, size=144, pack=0, offset=offset)

    entries = [RecordEntry(index=i, log="ab" * 32, inputs=(tensor("x", "cd", 144 * i),),
                           outputs=(tensor("y", "ef", 144 * i + 72),)) for i in range(2)]
    # A record with a sequence-of-maps output and a trace: the entry's optional fields.
    entries.append(RecordEntry(
        index=2, log="ab" * 32, inputs=(tensor("x", "cd", 288),),
        outputs=(ValueRef("p", "seq(map(int64,tensor(float)))", blake3="ef" * 32, size=379, pack=0, offset=432),),
        trace=TraceRef(blake3="01" * 32, size=2113, pack=1, offset=811)))
    leaves = [e.leaf() for e in entries]
    source = merkle.ListSource([merkle.leaf_hash(leaf) for leaf in leaves])
    checkpoint = note.sign_note(note.Checkpoint("example.org/log", 3, merkle.tree_root(source, 3)).body(),
                                [("example.org/log", key)])
    proof = LogProof(entries[1], 3, tuple(merkle.inclusion_path(source, 1, 3)), checkpoint).to_bytes()
    return {"note": (checkpoint,), "log-entry": (bytes([2]) + encode_entries(leaves),), "log-proof": (proof,)}


def tar_of(members: dict[str, bytes]) -> bytes:
    """A .ogb file holding ``members``, as ogverify writes them."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(members):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(members[name]), 0, 0o644
            tar.addfile(info, io.BytesIO(members[name]))
    return buffer.getvalue()


def seeds(target: str) -> list[bytes]:
    """Honest inputs of one target, the starting points for mutation."""
    from ogverify.model.tensors import to_npy_bytes

    if target in ("note", "log-entry", "log-proof"):
        return list(seed_log_inputs()[target])
    members = seed_bundle_members()
    if target == "manifest":
        return [members["manifest.json"]]
    if target == "npy":
        import numpy as np

        arrays = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array(["a", "bc"]), np.zeros((0, 4), np.int64),
                  np.array(True)]
        return [to_npy_bytes(a) for a in arrays]
    return [tar_of(members)]


def save_crash(target: str, data: bytes) -> Path:
    """Keep a crashing input as a regression case; returns its path."""
    folder = REGRESSIONS / target
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"crash-{hashlib.sha256(data).hexdigest()[:16]}.bin"
    path.write_bytes(data)
    return path


# --- engines -------------------------------------------------------------------------------------


def run_atheris(target: str, seconds: int) -> int:
    """libFuzzer via atheris, in this process (call once per process)."""
    import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]

    with atheris.instrument_imports():
        import ogverify.evidence.bundle
        import ogverify.evidence.canonical_json
        import ogverify.evidence.log.attached
        import ogverify.evidence.log.layout
        import ogverify.evidence.log.note
        import ogverify.evidence.manifest
        import ogverify.evidence.signing
        import ogverify.model.tensors  # noqa: F401
    corpus = scratch_folder() / f"corpus-{target}"
    corpus.mkdir()
    for index, seed in enumerate(seeds(target)):
        (corpus / f"seed-{index}").write_bytes(seed)
    for crash in sorted((REGRESSIONS / target).glob("*")) if (REGRESSIONS / target).is_dir() else []:
        (corpus / crash.name).write_bytes(crash.read_bytes())
    (REGRESSIONS / target).mkdir(parents=True, exist_ok=True)
    function = TARGETS[target]
    argv = [sys.argv[0], str(corpus), f"-max_total_time={seconds}", "-rss_limit_mb=4096", "-max_len=1048576",
            f"-artifact_prefix={REGRESSIONS / target}/", "-print_final_stats=1"]
    atheris.Setup(argv, function)
    atheris.Fuzz()
    return 0


def run_hypothesis(target: str, seconds: float) -> int:
    """Generate and mutate inputs with hypothesis until ``seconds`` have passed."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Flaky

    from tests.hostile.strategies import inputs_for

    function = TARGETS[target]
    failing: list[bytes] = []
    deadline = time.monotonic() + seconds
    rounds = 0
    while time.monotonic() < deadline:
        rounds += 1

        @settings(max_examples=2000, deadline=None, database=None, derandomize=False,
                  suppress_health_check=list(HealthCheck))
        @given(inputs_for(target, seeds(target)))
        def property_holds(data: bytes) -> None:
            try:
                function(data)
            except Exception:
                failing[:] = [data]
                raise

        try:
            property_holds()
        except (Exception, Flaky) as exc:  # the shrunk input is the last one recorded
            path = save_crash(target, failing[0])
            print(f"[{target}] CRASH {type(exc).__name__}: {str(exc)[:200]} -> {path}", file=sys.stderr)
            return 1
    print(f"[{target}] hypothesis: {rounds} rounds of 2000 inputs, no crash", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="total time to fuzz (shared by the targets)")
    parser.add_argument("--target", choices=[*TARGET_NAMES, "all"], default="all")
    parser.add_argument("--engine", choices=["auto", "atheris", "hypothesis"], default="auto")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.minutes <= 0:
        parser.error("--minutes must be positive")
    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: F401

            engine = "atheris"
        except ImportError:
            engine = "hypothesis"
    targets = list(TARGET_NAMES) if args.target == "all" else [args.target]
    seconds = max(1, int(args.minutes * 60 / len(targets)))
    if engine == "atheris" and args.child:
        return run_atheris(targets[0], seconds)
    if SCRATCH_VARIABLE in os.environ:
        return _fuzz(targets, seconds, engine)
    folder = Path(tempfile.mkdtemp(prefix="ogverify-fuzz-"))
    os.environ[SCRATCH_VARIABLE] = str(folder)  # children (libFuzzer) work in it too
    try:
        return _fuzz(targets, seconds, engine)
    finally:
        del os.environ[SCRATCH_VARIABLE]
        shutil.rmtree(folder, ignore_errors=True)


def _fuzz(targets: list[str], seconds: int, engine: str) -> int:
    status = 0
    for target in targets:
        print(f"== fuzzing {target} for {seconds} s with {engine}", file=sys.stderr, flush=True)
        if engine == "atheris":
            # libFuzzer runs once per process and exits on the first crash: one child per target.
            child = subprocess.run(
                [sys.executable, "-m", "tools.fuzz", "--child", "--engine", "atheris", "--target", target,
                 "--minutes", str(seconds / 60)],
                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False,
            )
            status = status or child.returncode
        else:
            status = run_hypothesis(target, seconds) or status
    if status:
        print(f"crashing inputs are under {REGRESSIONS}; fix the bug and commit them", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
