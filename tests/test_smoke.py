"""The shortest path through the tool: keygen, pack --run --sign, check."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import RunCli


def test_pack_sign_check_roundtrip(tmp_path: Path, run_cli: RunCli, keypair: tuple[Path, Path],
                                   mlp_files: dict[str, Path]) -> None:
    key, pub = keypair
    bundle = tmp_path / "b.ogb"
    packed = run_cli("pack", mlp_files["model"], "-i", f"x={mlp_files['x']}", "--run", "--sign", key, "--out", bundle)
    assert packed.exit_code == 0, packed.output
    checked = run_cli("check", bundle, "--trusted-key", pub)
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.startswith("VERIFIED")
