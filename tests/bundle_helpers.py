"""Helpers shared by the end-to-end tests: reading and rewriting bundles of either form.

Tampering is done the way an attacker would: by editing the files (or the tar members) of a
finished bundle, never through ogverify's own writer.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3
import numpy as np
import numpy.typing as npt
import rfc8785
import zstandard

from tests.conftest import CliResult, RunCli
from tools.fuzz import tar_of

Members = dict[str, bytes]


def read_members(bundle: Path) -> Members:
    """Every member of a bundle (directory or .ogb) as name → bytes."""
    if bundle.is_dir():
        return {p.relative_to(bundle).as_posix(): p.read_bytes() for p in sorted(bundle.rglob("*")) if p.is_file()}
    with tarfile.open(bundle, "r:") as tar:
        members: Members = {}
        for info in tar.getmembers():
            handle = tar.extractfile(info)
            assert handle is not None
            members[info.name] = handle.read()
        return members


def write_members(bundle: Path, members: Members) -> None:
    """Replace the bundle at ``bundle`` by exactly ``members``, keeping its form."""
    if bundle.suffix == ".ogb":
        bundle.write_bytes(tar_of(members))
        return
    if bundle.exists():
        shutil.rmtree(bundle)
    for name, data in members.items():
        path = bundle / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def tamper(bundle: Path, change: Callable[[Members], None]) -> None:
    """Read the bundle's members, let ``change`` edit them in place, write them back."""
    members = read_members(bundle)
    change(members)
    write_members(bundle, members)


def manifest_of(bundle: Path) -> dict[str, Any]:
    """The parsed manifest.json of a bundle of either form."""
    loaded: dict[str, Any] = json.loads(read_members(bundle)["manifest.json"])
    return loaded


def canonical(value: Any) -> bytes:
    """RFC 8785 bytes, as a careful attacker would write a re-edited manifest."""
    return bytes(rfc8785.dumps(value))


def tensor_entry(manifest: dict[str, Any], section: str, name: str) -> dict[str, Any]:
    """The manifest entry of input/claimed output ``name`` (section ``inputs`` or ``outputs``)."""
    entry: dict[str, Any] = next(t for t in manifest[section] if t["name"] == name)
    return entry


def blob_name(entry: dict[str, Any]) -> str:
    return f"blobs/blake3/{entry['digest']['blake3']}"


def blob_content(members: Members, entry: dict[str, Any]) -> bytes:
    """The uncompressed content of the blob a manifest entry names."""
    stored = members[blob_name(entry)]
    if entry["encoding"] == "zstd":
        return bytes(zstandard.ZstdDecompressor().decompress(stored, max_output_size=entry["size"]))
    return stored


def encode_like(entry: dict[str, Any], content: bytes) -> bytes:
    """``content`` stored with the same encoding as the blob of ``entry``."""
    if entry["encoding"] == "zstd":
        return bytes(zstandard.ZstdCompressor(level=3, write_checksum=False).compress(content))
    return content


def flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x01])


def npy_bytes(array: npt.NDArray[Any]) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), version=(1, 0), allow_pickle=False)
    return buffer.getvalue()


def load_npy(data: bytes) -> npt.NDArray[Any]:
    loaded: npt.NDArray[Any] = np.load(io.BytesIO(data), allow_pickle=False)
    return loaded


def replace_tensor_blob(members: Members, manifest: dict[str, Any], section: str, name: str,
                        array: npt.NDArray[Any]) -> None:
    """Swap a tensor's blob for ``array`` and update its manifest entry to match (digest, sizes)."""
    entry = tensor_entry(manifest, section, name)
    del members[blob_name(entry)]
    content = npy_bytes(array)
    entry["digest"] = {"blake3": blake3.blake3(content).hexdigest()}
    entry["size"] = entry["stored_size"] = len(content)
    entry["encoding"] = "identity"
    members[blob_name(entry)] = content
    members["manifest.json"] = canonical(manifest)


def single_error_line(result: CliResult) -> str:
    """The one ``error: ...`` line a failed command printed to stderr (and nothing on stdout)."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert result.stderr.rstrip("\n").splitlines()[-1] == errors[0], result.stderr
    return errors[0]


def leftovers(folder: Path) -> list[str]:
    """Staging files a pack or extract would leave behind if it were not cleaned up."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial") or p.name.endswith(".old"))


def check_json(run_cli: RunCli, *args: str | Path) -> tuple[CliResult, dict[str, Any]]:
    """``ogverify check ARGS --format json``, parsed."""
    result = run_cli("check", *args, "--format", "json")
    document: dict[str, Any] = json.loads(result.stdout)
    return result, document


def check_json_and_text(run_cli: RunCli, folder: Path, *args: str | Path) -> tuple[CliResult, dict[str, Any], str]:
    """One ``ogverify check ARGS`` that prints JSON and writes the text report to a file in ``folder``
    (``--report text=``): both reports of one re-execution, for half the cost of two runs."""
    text_path = folder / "check-report.txt"
    result = run_cli("check", *args, "--format", "json", "--report", f"text={text_path}")
    document: dict[str, Any] = json.loads(result.stdout)
    return result, document, text_path.read_text(encoding="utf-8")


def findings_of(report: dict[str, Any], stage: str) -> list[dict[str, Any]]:
    """Every finding (at any depth) of one stage in a JSON report."""
    found: list[dict[str, Any]] = []

    def walk(finding: dict[str, Any]) -> None:
        if finding["stage"] == stage:
            found.append(finding)
        for child in finding["children"]:
            walk(child)

    for top in report["findings"]:
        walk(top)
    return found


def text_headline(stdout: str) -> str:
    """The headline of a one-bundle text report: its first line (it is never wrapped)."""
    return stdout.splitlines()[0]
