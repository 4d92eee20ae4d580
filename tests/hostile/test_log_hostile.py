"""Hostile evidence logs: a log is a folder the audited party wrote. Each case changes an honest,
checkpointed log the way a producer (whose key the auditor trusts) could, and says how ``audit``
must answer: 1 (the evidence does not hold) or 3 (cannot verify), with the reason, never a
traceback, and in bounded time and memory. Then the parsers of a log's bytes (signed notes,
entry bundles, a bundle's log-proof.json) under generated input, as tools/fuzz.py runs them."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings

from ogverify.evidence.log import layout, merkle, note
from ogverify.evidence.log.store import LogStore
from ogverify.evidence.signing import load_private_key
from ogverify.packing.log import EvidenceLog
from tests.conftest import RunCli
from tests.hostile.strategies import inputs_for
from tests.log_helpers import add_one_model, records
from tools.fuzz import TARGETS, seeds

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Honest:
    log: Path
    key: Path
    pub: Path
    origin: str


def _sign(honest: Honest, size: int, root: bytes, signatures: int = 1) -> None:
    key = load_private_key(honest.key)
    body = note.Checkpoint(honest.origin, size, root).body()
    signed = note.sign_note(body, [(honest.origin, key)] * signatures) if signatures <= note.MAX_SIGNATURES else (
        body + b"\n" + note.signature_line(body, honest.origin, key).encode() * signatures)
    (honest.log / layout.CHECKPOINT).write_bytes(signed)


def _rewrite_entry(honest: Honest, index: int, change: Callable[[dict[str, object]], None]) -> bytes:
    """Rewrite record ``index``'s entry in its bundle; returns the new leaf."""
    path = next((honest.log / "tile" / "entries").glob("000*"))
    if path.is_dir():
        path = next(path.iterdir())
    width = 300 if path.name == "000" else int(path.name)
    leaves = layout.decode_entries(path.read_bytes(), min(width, 256), "entries")
    entry = json.loads(leaves[index])
    change(entry)
    leaves[index] = layout.canonical_dumps(entry)
    path.write_bytes(layout.encode_entries(leaves))
    return leaves[index]


def truncated_entries(h: Honest) -> None:
    path = h.log / "tile" / "entries" / "000"
    path.write_bytes(path.read_bytes()[:1000])


def rewritten_record(h: Honest) -> None:
    _rewrite_entry(h, 3, lambda e: e["outputs"][0].__setitem__("blake3", "0" * 64))  # type: ignore[index]


def rewritten_history(h: Honest) -> None:
    """The producer rebuilds the tiles over a changed record: a different root than the one signed."""
    leaf = _rewrite_entry(h, 3, lambda e: e["outputs"][0].__setitem__("blake3", "0" * 64))  # type: ignore[index]
    tile = h.log / "tile" / "0" / "000"
    data = bytearray(tile.read_bytes())
    data[3 * 32 : 4 * 32] = merkle.leaf_hash(leaf)
    tile.write_bytes(bytes(data))


def _reseal(h: Honest) -> None:
    """Rebuild the tiles over the entries as they now are and sign the new root: a log whose
    producer wrote the hostile entry from the start."""
    store = _store(h.log)
    leaves = layout.decode_entries((h.log / "tile" / "entries" / "000").read_bytes(), 256, "entries")
    leaves += layout.decode_entries((h.log / "tile" / "entries" / "001.p" / "44").read_bytes(), 44, "entries")
    shutil.rmtree(h.log / "tile")
    layout.TileWriter(store, 0).append(leaves)
    _sign(h, 300, merkle.tree_root(layout.LogReader(store), 300))


def index_gap(h: Honest) -> None:
    _rewrite_entry(h, 6, lambda e: e.__setitem__("index", 5))
    _reseal(h)


def missing_entries(h: Honest) -> None:
    (h.log / "tile" / "entries" / "000").unlink()


def checkpoint_larger_than_log(h: Honest) -> None:
    _sign(h, 1000, bytes(32))


def huge_declared_size(h: Honest) -> None:
    (h.log / layout.SIZE).write_text(f"{note.MAX_SIZE}\n")
    _sign(h, note.MAX_SIZE, bytes(32))


def garbage_size(h: Honest) -> None:
    (h.log / layout.SIZE).write_text("three hundred\n")


def model_path_escape(h: Honest) -> None:
    descriptor = json.loads((h.log / layout.DESCRIPTOR).read_bytes())
    descriptor["manifest"]["model"]["name"] = "../../escaped.onnx"
    (h.log / layout.DESCRIPTOR).write_bytes(layout.canonical_dumps(descriptor))


def tensor_path_escape(h: Honest) -> None:
    _rewrite_entry(h, 0, lambda e: e["inputs"][0].__setitem__("blake3", "../../../etc/passwd"))  # type: ignore[index]
    _reseal(h)


def huge_trace(h: Honest) -> None:
    """A record naming a trace larger than any trace may be: refused before it is read."""
    size = layout.MAX_TRACE_BLOB + 1
    _rewrite_entry(h, 0, lambda e: e.__setitem__("trace", {"blake3": "0" * 64, "size": size, "pack": 0, "offset": 0}))
    _reseal(h)


def tensor_posing_as_a_value(h: Honest) -> None:
    """An output entry that names a sequence type over a plain tensor's bytes."""
    def change(entry: dict[str, object]) -> None:
        output = entry["outputs"][0]  # type: ignore[index]
        del output["dtype"], output["shape"]
        output["type"] = "seq(tensor(float))"

    _rewrite_entry(h, 0, change)
    _reseal(h)


def many_signatures(h: Honest) -> None:
    reader = layout.LogReader(_store(h.log))
    _sign(h, 300, merkle.tree_root(reader, 300), signatures=note.MAX_SIGNATURES + 1)


def truncated_pack(h: Honest) -> None:
    pack = h.log / "data" / "000"
    pack.write_bytes(pack.read_bytes()[:-10])


def garbage_descriptor(h: Honest) -> None:
    (h.log / layout.DESCRIPTOR).write_bytes(b'{"format": "ogverify-log", "format": 1}')


def _store(log: Path) -> LogStore:
    from ogverify.evidence.log.store import open_store

    return open_store(log)


CASES: list[tuple[Callable[[Honest], None], int, str]] = [
    (truncated_entries, 1, "ends"),
    (rewritten_record, 1, "rewritten"),
    (rewritten_history, 1, "rewritten"),
    (index_gap, 1, "says it is record 5"),
    (missing_entries, 1, "missing"),
    (checkpoint_larger_than_log, 1, "the checkpoint signs 1000 records; the log holds 300"),
    (huge_declared_size, 1, "missing"),
    (garbage_size, 1, "not a record count"),
    (model_path_escape, 3, "points outside"),
    (tensor_path_escape, 1, "no valid blake3 digest"),
    (many_signatures, 1, "over the limit"),
    (huge_trace, 1, "limit of a trace"),
    (tensor_posing_as_a_value, 1, "not an ogverify value"),
    (truncated_pack, 1, "ends before"),
    (garbage_descriptor, 3, "duplicate"),
]


@pytest.fixture(scope="module")
def honest_once(tmp_path_factory: pytest.TempPathFactory) -> Honest:
    from ogverify.evidence.signing import generate_key_pair

    folder = tmp_path_factory.mktemp("honest")
    model = add_one_model(folder / "add.onnx")
    key, pub, _ = generate_key_pair(folder / "producer.key")
    with EvidenceLog.create(folder / "log", model) as log:
        log.append_batch({"x": records(300)}, {"y": records(300, start=1)})
        log.checkpoint([key])
        return Honest(folder / "log", key, pub, log.origin)


@pytest.mark.parametrize(("change", "exit_code", "reason"), CASES, ids=[c[0].__name__ for c in CASES])
def test_a_hostile_log_is_refused(tmp_path: Path, run_cli: RunCli, honest_once: Honest,
                                  change: Callable[[Honest], None], exit_code: int, reason: str) -> None:
    honest = Honest(tmp_path / "log", honest_once.key, honest_once.pub, honest_once.origin)
    shutil.copytree(honest_once.log, honest.log)
    change(honest)
    result = run_cli("audit", honest.log, "--trusted-key", honest.pub, "--sample", "all", "--seed", "01",
                     "--no-explain", "--format", "json")
    assert result.exit_code == exit_code, result.output
    assert reason in result.stdout + result.stderr, result.output


def test_the_honest_log_passes(run_cli: RunCli, honest_once: Honest) -> None:
    result = run_cli("audit", honest_once.log, "--trusted-key", honest_once.pub, "--sample", "all")
    assert result.exit_code == 0, result.output


def test_the_log_seeds_are_accepted() -> None:
    for target in ("note", "log-entry", "log-proof"):
        for seed in seeds(target):
            TARGETS[target](seed)
    assert note.verified_by(note.parse_note(seeds("note")[0]),
                            [Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key()])


@FAST
@given(inputs_for("note", seeds("note")))
def test_note_parser_accepts_or_refuses(data: bytes) -> None:
    TARGETS["note"](data)


@FAST
@given(inputs_for("log-entry", seeds("log-entry")))
def test_entry_parser_accepts_or_refuses(data: bytes) -> None:
    TARGETS["log-entry"](data)


@FAST
@given(inputs_for("log-proof", seeds("log-proof")))
def test_log_proof_check_never_raises(data: bytes) -> None:
    TARGETS["log-proof"](data)
