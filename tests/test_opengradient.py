"""``ogverify import opengradient``: on-chain inference records, decoded as the OpenGradient SDK decodes them.

The fixture (tests/fixtures/build_opengradient.py) runs a real model and ABI-encodes its
transaction and receipt with eth-abi; the SDK's conversion rules are checked here against the
rules the SDK documents (``Decimal(str(x)).normalize()`` in, ``float32(Decimal(v) / 10**d)`` out).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from ogverify.evidence.comparison import ComparisonSpec
from ogverify.interop.opengradient import (
    EVENT_SIGNATURE,
    RUN_SIGNATURE,
    decimals_of_float32,
    event_topic,
    from_fixed_point,
    run_selector,
    to_fixed_point,
)
from ogverify.model.compare import compare_output
from tests.bundle_helpers import single_error_line
from tests.conftest import RunCli
from tests.fixtures.build_opengradient import build

pytest.importorskip("eth_abi", reason="eth-abi decodes the records: pip install -e '.[opengradient]'")

SHIPPED = Path(__file__).resolve().parents[1] / "fixtures" / "opengradient"


@pytest.mark.parametrize(("number", "expected"), [
    (1.5, (15, 1)), (-0.25, (-25, 2)), (1.0, (1, 0)), (10.0, (10, 0)), (1200, (1200, 0)), (0, (0, 0)),
    (1e-07, (1, 7)), (np.float32(0.1), (1, 1)), (123.456, (123456, 3)), (-3, (-3, 0)),
])
def test_sdk_fixed_point_rule(number: float, expected: tuple[int, int]) -> None:
    """``Decimal(str(x)).normalize()``: digits as the value, the negative exponent as decimals (>= 0)."""
    assert to_fixed_point(number) == expected
    value, decimals = expected
    assert Decimal(value) / 10**decimals == Decimal(str(number))  # the value itself is kept exactly


def test_sdk_decoding_rule() -> None:
    assert from_fixed_point(15, 1) == np.float32(1.5) and from_fixed_point(15, 1).dtype == np.float32
    assert from_fixed_point(-1, 7) == np.float32(Decimal(-1) / Decimal(10) ** 7)
    assert from_fixed_point(10**30, 30) == np.float32(1.0)  # int128 values beyond float64's digits
    assert decimals_of_float32(from_fixed_point(28125, 4)) == (28125, 4)


def test_abi_names_are_the_hubs() -> None:
    assert RUN_SIGNATURE == "run(string,uint8,((string,(int128,int128)[],uint32[])[],(string,string[])[]))"
    assert EVENT_SIGNATURE == (
        "InferenceResult(((string,(int128,int128)[],uint32[])[],(string,string[])[],(string,string)[],bool))")
    assert len(run_selector()) == 4 and len(event_topic()) == 32


def test_decimal_mode_rounds_the_reproduction_to_the_claims_decimals() -> None:
    claimed = np.array([0.5, 0.25, 3.0], np.float32)
    spec = ComparisonSpec.parse("decimal:1,2,0")
    assert compare_output("y", claimed, np.array([0.5000001, 0.2549, 3.4], np.float32), spec).passed
    failed = compare_output("y", claimed, np.array([0.5, 0.26, 3.0], np.float32), spec)
    assert not failed.passed
    assert failed.reason == ("1 of 3 elements differ at their decimals; first: element [1] claimed 0.25, "
                             "reproduction rounds to 0.26")
    assert str(spec) == "decimal:1,2,0" and ComparisonSpec.from_json(spec.to_json()) == spec


def findings_of(stdout: str) -> list[dict[str, object]]:
    flat: list[dict[str, object]] = []

    def walk(finding: dict[str, object]) -> None:
        flat.append(finding)
        for child in finding["children"]:  # type: ignore[attr-defined]
            walk(child)

    for finding in json.loads(stdout)["findings"]:
        walk(finding)
    return flat


def test_imported_record_checks(tmp_path: Path, run_cli: RunCli) -> None:
    files = build(tmp_path / "record")
    bundle = tmp_path / "record.ogb"
    result = run_cli("import", "opengradient", "--model", files["model"], "--tx", files["transaction"],
                     "--receipt", files["receipt"], "--out", bundle)
    assert result.exit_code == 0, result.output
    checked = run_cli("check", bundle, "--allow-unsigned", "--format", "json")
    assert checked.exit_code == 0, checked.output
    findings = findings_of(checked.stdout)
    chain = next(f for f in findings if f["subject"] == "chain record")
    tx_hash = json.loads(files["transaction"].read_bytes())["hash"]
    assert chain["status"] == "pass"
    assert str(chain["message"]).endswith(f"from transaction {tx_hash}")
    assert chain["evidence"]["inference_mode"] == "VANILLA"  # type: ignore[index]
    assert chain["evidence"]["files"] == ["transaction.json", "receipt.json"]  # type: ignore[index]
    assert next(f for f in findings if f["subject"] == "model 'model.onnx' CID")["status"] == "pass"
    outputs = {c["name"]: c["comparison"] for c in json.loads(checked.stdout)["outputs"]}
    assert outputs == {"y": "decimal:4,0,0", "label": "exact"}
    inspected = json.loads(run_cli("inspect", bundle, "--format", "json").stdout)
    assert inspected["provenance"]["chain"]["transaction_hash"] == tx_hash


def test_the_shipped_fixture_checks(run_cli: RunCli, tmp_path: Path) -> None:
    rebuilt = build(tmp_path / "rebuilt")
    for name, path in rebuilt.items():  # the script makes exactly what is shipped
        assert path.read_bytes() == (SHIPPED / path.name).read_bytes(), name
    bundle = tmp_path / "shipped.ogb"
    assert run_cli("import", "opengradient", "--model", SHIPPED / "model.onnx", "--input-json",
                   SHIPPED / "model-input.json", "--output-json", SHIPPED / "model-output.json",
                   "--out", bundle).exit_code == 0
    result = run_cli("check", bundle, "--allow-unsigned", "--format", "json")
    assert result.exit_code == 0, result.output
    chain = next(f for f in findings_of(result.stdout) if f["subject"] == "chain record")
    assert str(chain["message"]).startswith("OpenGradient VANILLA inference of Qm")
    assert str(chain["message"]).endswith("from an SDK result (no transaction)")


def test_a_changed_output_value_fails_naming_output_and_element(tmp_path: Path, run_cli: RunCli) -> None:
    files = build(tmp_path / "record", change_output=("y", 0))
    bundle = tmp_path / "changed.ogb"
    assert run_cli("import", "opengradient", "--model", files["model"], "--tx", files["transaction"],
                   "--receipt", files["receipt"], "--out", bundle).exit_code == 0
    result = run_cli("check", bundle, "--allow-unsigned", "--no-explain")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == (
        "FAILED: output 'y' [decimal:4,0,0]: 1 of 3 elements differ at their decimals; first: element [0, 0] "
        "claimed 2.8126, reproduction rounds to 2.8125")


def test_a_simulation_result_is_a_warning(tmp_path: Path, run_cli: RunCli) -> None:
    files = build(tmp_path / "record", simulation=True)
    bundle = tmp_path / "simulated.ogb"
    result = run_cli("import", "opengradient", "--model", files["model"], "--tx", files["transaction"],
                     "--receipt", files["receipt"], "--out", bundle)
    assert "warning: the record is a simulation result" in result.stderr
    checked = run_cli("check", bundle, "--allow-unsigned", "--no-rerun", "--format", "json")
    assert checked.exit_code == 0
    chain = next(f for f in findings_of(checked.stdout) if f["subject"] == "chain record")
    assert chain["status"] == "warn" and "simulation result: it never settled on chain" in str(chain["message"])


def test_bad_records_are_one_line_errors(tmp_path: Path, run_cli: RunCli) -> None:
    files = build(tmp_path / "record")
    out = tmp_path / "b.ogb"
    base = ("import", "opengradient", "--model", files["model"], "--out", out)

    not_run = tmp_path / "transfer.json"
    not_run.write_text(json.dumps({"hash": "0x" + "11" * 32, "input": "0xa9059cbb" + "00" * 64}), encoding="utf-8")
    result = run_cli(*base, "--tx", not_run, "--receipt", files["receipt"])
    assert result.exit_code == 2
    assert single_error_line(result).startswith(
        "error: --tx transfer.json is not a call of the inference hub's run(): its selector is 0xa9059cbb")

    no_event = build(tmp_path / "no-event", without_event=True)
    result = run_cli(*base, "--tx", no_event["transaction"], "--receipt", no_event["receipt"])
    assert result.exit_code == 2
    assert single_error_line(result).startswith("error: --receipt receipt.json has no InferenceResult event")

    other_model = tmp_path / "other.onnx"
    other_model.write_bytes(files["model"].read_bytes() + b"\n")
    result = run_cli("import", "opengradient", "--model", other_model, "--out", out, "--tx", files["transaction"],
                     "--receipt", files["receipt"])
    assert result.exit_code == 1
    assert single_error_line(result).startswith("error: model other.onnx is not the model of this inference")

    result = run_cli(*base, "--tx", files["transaction"])
    assert (result.exit_code, single_error_line(result)) == (
        2, "error: give --tx and --receipt, or --input-json and --output-json")
    assert not out.exists()


def test_python_api(tmp_path: Path) -> None:
    import ogverify

    files = build(tmp_path / "record")
    bundle = tmp_path / "api.ogb"
    ogverify.import_opengradient(files["model"], bundle, tx=files["transaction"], receipt=files["receipt"])
    report = ogverify.check(bundle, allow_unsigned=True)
    assert report.exit_code == 0, report.headline
    assert {c.name: str(c.spec) for c in report.comparisons} == {"y": "decimal:4,0,0", "label": "exact"}
