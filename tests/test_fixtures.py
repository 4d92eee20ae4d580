"""The shipped fixtures: rebuilt deterministically, and each checks the way the README says."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import RunCli
from tests.fixtures.build_shipped import build

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_fixture_build_is_deterministic(tmp_path: Path) -> None:
    first = build(tmp_path / "one")
    second = build(tmp_path / "two")
    assert [p.name for p in first] == [p.name for p in second]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_shipped_bundle_verifies(run_cli: RunCli) -> None:
    result = run_cli("check", FIXTURES / "mlp.ogb", "--trusted-key", FIXTURES / "demo.key.pub")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("VERIFIED: outputs reproduced")


def test_shipped_tampered_bundle_names_the_input(run_cli: RunCli) -> None:
    result = run_cli("check", FIXTURES / "mlp-tampered.ogb", "--trusted-key", FIXTURES / "demo.key.pub")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == (
        "FAILED: input 'x': blake3 digest does not match the manifest (content changed)"
    )


def test_shipped_numpy_bundle_explains_the_numbers(run_cli: RunCli) -> None:
    result = run_cli("check", FIXTURES / "mlp-numpy.ogb", "--trusted-key", FIXTURES / "demo.key.pub")
    assert result.exit_code == 1
    first = result.stdout.splitlines()[0]
    assert first.startswith("FAILED: output 'y' [exact]: ")
    assert "elements differ bitwise (max abs diff" in first
    assert "ULP" in first
