"""IPFS CIDs: ``ogverify cid``, ``pack --model-cid`` and the check's provenance stage.

The DAG builder is checked against npm's ``ipfs-only-hash`` (js-ipfs's own importer), an
implementation we did not write, on files of every shape: empty, one chunk, many chunks (one parent)
and more than 174 chunks (a second level of parents). .ci/run installs it and sets
OGVERIFY_REQUIRE_IPFS_ONLY_HASH, so CI never skips that test.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ogverify.errors import UsageError
from ogverify.evidence.cid import CHUNK_SIZE, MAX_LINKS, FileCids, content_cids, file_cids, parse_cid
from tests.conftest import RunCli

HELLO_V0 = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
HELLO_V1 = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
EMPTY_V0 = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
EMPTY_V1 = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"

SIZES = {
    "empty": 0,
    "one-chunk": 1000,
    "exactly-one-chunk": CHUNK_SIZE,
    "two-chunks": CHUNK_SIZE + 1,
    "many-chunks": 5 * CHUNK_SIZE + 77,
    "two-levels": (MAX_LINKS + 1) * CHUNK_SIZE + 1,
}

_JS = """
const H = require('ipfs-only-hash');
const fs = require('fs');
(async () => {
  const out = {};
  for (const file of process.argv.slice(1)) {
    const data = fs.readFileSync(file);
    out[file] = [await H.of(data), await H.of(data, {cidVersion: 1, rawLeaves: true})];
  }
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def _ipfs_only_hash() -> bool:
    """Whether node can load ipfs-only-hash (from NODE_PATH or the current directory)."""
    if shutil.which("node") is None:
        return False
    probe = subprocess.run(["node", "-e", "require('ipfs-only-hash')"], capture_output=True, check=False)
    return probe.returncode == 0


def test_known_vectors() -> None:
    assert content_cids([b"hello world\n"]) == FileCids(HELLO_V0, HELLO_V1, 12)
    assert content_cids([]) == FileCids(EMPTY_V0, EMPTY_V1, 0)
    # the pieces a stream arrives in do not matter
    assert content_cids([b"hel", b"", b"lo world\n"]) == content_cids([b"hello world\n"])


def test_same_cids_as_js_ipfs_importer(tmp_path: Path) -> None:
    if not _ipfs_only_hash():
        if os.environ.get("OGVERIFY_REQUIRE_IPFS_ONLY_HASH"):
            pytest.fail("OGVERIFY_REQUIRE_IPFS_ONLY_HASH is set, but node cannot load ipfs-only-hash")
        pytest.skip("npm's ipfs-only-hash is not installed (npm install ipfs-only-hash; NODE_PATH=.../node_modules)")
    generator = random.Random(14)
    files = []
    for name, size in SIZES.items():
        path = tmp_path / name
        path.write_bytes(generator.randbytes(size))
        files.append(path)
    hello = tmp_path / "hello.txt"
    hello.write_bytes(b"hello world\n")
    files.append(hello)
    result = subprocess.run(["node", "-e", _JS, *map(str, files)], capture_output=True, text=True, check=True)
    expected = json.loads(result.stdout)
    for path in files:
        cids = file_cids(path)
        assert [cids.v0, cids.v1] == expected[str(path)], path.name
        assert cids.size == path.stat().st_size
    assert expected[str(hello)] == [HELLO_V0, HELLO_V1]


def test_matches_any_form_of_the_same_content() -> None:
    cids = content_cids([b"hello world\n"])
    v0_as_v1 = parse_cid(HELLO_V0).set(version=1).encode("base32")
    assert cids.matches(HELLO_V0) and cids.matches(HELLO_V1) and cids.matches(str(v0_as_v1))
    assert cids.matches(str(parse_cid(HELLO_V1).encode("base58btc")))
    assert not cids.matches(EMPTY_V0) and not cids.matches(EMPTY_V1)
    with pytest.raises(UsageError, match="is not an IPFS CID"):
        parse_cid("Qm-not-a-cid")


def test_cid_command(tmp_path: Path, run_cli: RunCli) -> None:
    hello = tmp_path / "hello.txt"
    hello.write_bytes(b"hello world\n")
    result = run_cli("cid", hello)
    assert result.exit_code == 0
    assert result.stdout == f"{HELLO_V0} {HELLO_V1} {hello}\n"
    listed = json.loads(run_cli("cid", "--format", "json", hello).stdout)
    assert listed == [{"file": str(hello), "cidv0": HELLO_V0, "cidv1": HELLO_V1, "size": 12}]
    missing = run_cli("cid", tmp_path / "nope")
    assert missing.exit_code == 2
    assert missing.stderr == f"error: {tmp_path / 'nope'} is not a file\n"


def test_pack_records_and_check_verifies_the_model_cid(
    tmp_path: Path, run_cli: RunCli, mlp_files: dict[str, Path]
) -> None:
    model, x = mlp_files["model"], mlp_files["x"]
    y = tmp_path / "y.npy"
    np.save(y, np.zeros((4, 8), np.float32))  # claimed, never compared: these checks stop before re-execution
    pack = ("pack", model, "-i", f"x={x}", "-O", f"y={y}")
    cids = file_cids(model)
    plain = tmp_path / "plain"
    assert run_cli(*pack, "--out", plain).exit_code == 0
    assert "provenance" not in json.loads((plain / "manifest.json").read_bytes())  # old bundles unchanged

    bundle = tmp_path / "claimed"
    assert run_cli(*pack, "--model-cid", cids.v1, "--out", bundle).exit_code == 0
    assert json.loads((bundle / "manifest.json").read_bytes())["provenance"] == {"model_cid": cids.v1}
    report = run_cli("check", bundle, "--allow-unsigned", "--no-rerun", "--format", "json")
    assert report.exit_code == 0, report.output
    finding = next(f for f in json.loads(report.stdout)["findings"] if f["stage"] == "provenance")
    assert finding["status"] == "pass"
    assert finding["message"] == f"model 'mlp.onnx' is IPFS CID {cids.v1}"

    other = tmp_path / "other.ogb"
    assert run_cli(*pack, "--model-cid", HELLO_V0, "--out", other).exit_code == 0
    failed = run_cli("check", other, "--allow-unsigned", "--no-rerun")
    assert failed.exit_code == 1
    assert f"model 'mlp.onnx' is not IPFS CID {HELLO_V0}: its CIDs are {cids.v0} and {cids.v1}" in failed.stdout

    bad = run_cli(*pack, "--model-cid", "not-a-cid", "--out", tmp_path / "b.ogb")
    assert bad.exit_code == 2
    assert bad.stderr.startswith("error: 'not-a-cid' is not an IPFS CID")
