"""Policy files: discovery, schema validation, signer and comparison-mode rules, environment
allow/forbid rules, limits and [check] defaults."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

import ogverify
from ogverify.errors import UsageError
from ogverify.evidence.bundle import Limits
from ogverify.evidence.comparison import ComparisonPolicy, ComparisonSpec
from ogverify.evidence.schemas import load_schema
from ogverify.report.findings import EnvironmentDifference
from ogverify.verify.policy import (
    EnvironmentPolicy,
    EnvironmentRule,
    discover_policy,
    limit_fields,
    load_policy,
    spec_allowed,
)
from tests.bundle_helpers import canonical, check_json, findings_of, single_error_line, tamper
from tests.conftest import RunCli
from tests.gate_helpers import mlp_claim_and_keys, reference_run


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Keys A and B; bundles signed by A, by A and B, and an unsigned one comparing allclose."""
    from ogverify.evidence.signing import sign_bundle

    root = tmp_path_factory.mktemp("policy")
    model, x, y = mlp_claim_and_keys(root, ("a", "b"), seed=2)
    ogverify.pack(model, root / "by-a.ogb", inputs={"x": x}, claimed_outputs={"y": y}, sign_keys=[root / "a.key"])
    ogverify.pack(model, root / "by-ab.ogb", inputs={"x": x}, claimed_outputs={"y": y},
                  sign_keys=[root / "a.key", root / "b.key"])
    ogverify.pack(model, root / "loose", inputs={"x": x}, claimed_outputs={"y": y},
                  comparison=ComparisonPolicy(ComparisonSpec.parse("allclose:1e-3,1e-5")))
    sign_bundle(root / "loose", root / "a.key")
    return {"root": root, "by-a": root / "by-a.ogb", "by-ab": root / "by-ab.ogb", "loose": root / "loose"}


def write_policy(folder: Path, text: str, name: str = "ogverify.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_limits_schema_stays_in_sync_with_the_limits_dataclass() -> None:
    schema = load_schema("policy-v1.json")
    limits = schema["properties"]["limits"]
    assert limits["additionalProperties"] is False
    assert set(limits["properties"]) == {f.name for f in fields(Limits)}, (
        "schemas/policy-v1.json [limits] must name exactly the fields of ogverify.evidence.bundle.Limits")
    for name, kind in limit_fields().items():
        assert kind is int
        assert limits["properties"][name]["type"] == "integer", name


def test_discovery_from_the_current_directory(tmp_path: Path) -> None:
    assert discover_policy(tmp_path) is None
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert discover_policy(tmp_path) is None
    (tmp_path / "pyproject.toml").write_text("[tool.ogverify.check]\ntimeout = 5\n")
    assert discover_policy(tmp_path) == tmp_path / "pyproject.toml"
    assert load_policy(tmp_path / "pyproject.toml").timeout == 5.0
    write_policy(tmp_path, "[check]\ntimeout = 7\n")
    assert discover_policy(tmp_path) == tmp_path / "ogverify.toml"  # ogverify.toml wins


def test_cli_discovers_and_applies_a_policy(bundles: dict[str, Path], run_cli: RunCli, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    root = bundles["root"]
    # Keys are resolved against the policy's folder; the policy makes the bundle trusted.
    write_policy(tmp_path, f'[signatures]\ntrusted_keys = ["{root / "a.key.pub"}"]\n[check]\nrerun = false\n')
    monkeypatch.chdir(tmp_path)
    result, report = check_json(run_cli, bundles["by-a"])
    assert result.exit_code == 0, result.output
    assert f"using policy {tmp_path / 'ogverify.toml'}" in result.stderr
    assert report["headline"] == "VERIFIED: integrity and signatures hold"  # [check] rerun = false
    # --no-policy ignores it: the bundle's signer is no longer trusted.
    result = run_cli("check", bundles["by-a"], "--no-policy", "--no-rerun")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == "FAILED: bundle is signed, but no trusted key was given (--trusted-key)"


def test_invalid_policies_are_usage_errors(bundles: dict[str, Path], run_cli: RunCli, tmp_path: Path) -> None:
    cases = {
        "[signatures]\ntrusted = []\n": "does not match its schema at signatures: unknown key 'trusted'",
        "[limits]\nmax_bytes = 3\n": "does not match its schema at limits: unknown key 'max_bytes'",
        '[comparison]\nallowed = ["close"]\n': "does not match its schema at comparison/allowed/0",
        '[comparison]\nallowed = ["ulp:x"]\n': "invalid comparison 'ulp:x'",
        '[environment]\nforbid = ["runtime.version:build"]\n': "does not match its schema at environment/forbid/0",
        "[signatures\n": "is not valid TOML",
        '[signatures]\nrequired_keys = ["missing.pub"]\n': "missing.pub does not exist",
    }
    for index, (text, message) in enumerate(cases.items()):
        policy = write_policy(tmp_path, text, f"p{index}.toml")
        result = run_cli("check", bundles["by-a"], "--policy", policy)
        assert result.exit_code == 2, (text, result.output)
        line = single_error_line(result)
        assert str(policy) in line and message in line, (text, line)
    result = run_cli("check", bundles["by-a"], "--policy", tmp_path / "nope.toml")
    assert single_error_line(result) == f"error: policy file {tmp_path / 'nope.toml'} does not exist"


def test_required_keys_and_minimum_signatures(bundles: dict[str, Path], run_cli: RunCli, tmp_path: Path) -> None:
    root = bundles["root"]
    policy = write_policy(tmp_path, f'[signatures]\nrequired_keys = ["{root / "b.key.pub"}"]\n'
                                    f'trusted_keys = ["{root / "a.key.pub"}"]\n')
    result, report = check_json(run_cli, bundles["by-a"], "--policy", policy, "--no-rerun")
    assert result.exit_code == 1
    assert report["headline"] == f"FAILED: policy requires a signature by {root / 'b.key.pub'}, which is missing"
    result, report = check_json(run_cli, bundles["by-ab"], "--policy", policy, "--no-rerun")
    assert result.exit_code == 0, report["headline"]
    (stage,) = [f for f in report["findings"] if f["stage"] == "policy"]
    assert stage["status"] == "pass"
    policy = write_policy(tmp_path, f'[signatures]\nmin_signatures = 2\ntrusted_keys = ["{root}"]\n', "min.toml")
    result, report = check_json(run_cli, bundles["by-a"], "--policy", policy, "--no-rerun")
    assert result.exit_code == 1
    assert report["headline"] == "FAILED: policy requires 2 trusted signature(s), the bundle has 1"
    result, _ = check_json(run_cli, bundles["by-ab"], "--policy", policy, "--no-rerun")
    assert result.exit_code == 0


def test_every_unmet_signature_rule_is_reported_at_once(bundles: dict[str, Path], run_cli: RunCli,
                                                        tmp_path: Path) -> None:
    root = bundles["root"]
    policy = write_policy(tmp_path, f'[signatures]\nrequired_keys = ["{root / "b.key.pub"}"]\nmin_signatures = 2\n'
                                    f'trusted_keys = ["{root / "a.key.pub"}"]\n')
    result, report = check_json(run_cli, bundles["by-a"], "--policy", policy, "--no-rerun")
    assert result.exit_code == 1
    assert report["headline"] == (
        f"FAILED: 2 policy rules fail: policy requires a signature by {root / 'b.key.pub'}, which is missing; "
        "policy requires 2 trusted signature(s), the bundle has 1")
    (stage,) = [f for f in report["findings"] if f["stage"] == "policy"]
    assert [(c["subject"], c["status"]) for c in stage["children"]] == [("required keys", "fail"),
                                                                         ("min signatures", "fail")]


def test_allowed_comparison_modes(bundles: dict[str, Path], run_cli: RunCli, tmp_path: Path) -> None:
    root = bundles["root"]
    keys = f'[signatures]\ntrusted_keys = ["{root / "a.key.pub"}"]\n'
    strict = write_policy(tmp_path, keys + '[comparison]\nallowed = ["exact", "ulp:4"]\n', "strict.toml")
    result, report = check_json(run_cli, bundles["loose"], "--policy", strict, "--no-rerun")
    assert result.exit_code == 1
    assert report["headline"] == ("FAILED: output 'y' compares allclose:0.001,1e-05, which the policy does not "
                                  "allow (allowed: exact, ulp:4)")
    # An exact bundle is allowed under any list: exact is the strictest mode.
    result, _ = check_json(run_cli, bundles["by-a"], "--policy", strict, "--no-rerun")
    assert result.exit_code == 0
    # A rule per model and output wins over the global list; the first rule that matches applies.
    ruled = write_policy(tmp_path, keys + '[comparison]\nallowed = ["exact"]\n'
                         '[[comparison.rules]]\nmodel = "other*.onnx"\nallowed = ["exact"]\n'
                         '[[comparison.rules]]\nmodel = "mlp*.onnx"\noutput = "y"\nallowed = ["allclose:1e-2,1e-4"]\n',
                         "ruled.toml")
    result, report = check_json(run_cli, bundles["loose"], "--policy", ruled, "--no-rerun")
    assert result.exit_code == 0, report["headline"]
    (child,) = [f for f in findings_of(report, "policy") if f["subject"] == "output 'y'"]
    assert child["evidence"] == {"mode": "allclose:0.001,1e-05", "allowed": ["allclose:1e-2,1e-4"]}


def test_spec_allowed_bounds() -> None:
    parse = ComparisonSpec.parse
    assert spec_allowed(parse("exact"), ["topk"])
    assert spec_allowed(parse("ulp:3"), ["ulp:4"])
    assert not spec_allowed(parse("ulp:5"), ["ulp:4"])
    assert spec_allowed(parse("ulp:500"), ["ulp"])
    assert spec_allowed(parse("allclose:1e-4,1e-6"), ["allclose:1e-3,1e-5"])
    assert not spec_allowed(parse("allclose:1e-4,1e-4"), ["allclose:1e-3,1e-5"])
    assert spec_allowed(parse("topk:5"), ["topk:3"])
    assert not spec_allowed(parse("topk:1"), ["topk:3"])
    assert not spec_allowed(parse("topk:1"), ["ulp", "allclose"])


def difference(name: str, recorded: object, current: object) -> EnvironmentDifference:
    return EnvironmentDifference(name, recorded, current, "high", "test")


def test_environment_rules_match_names_globs_and_version_parts() -> None:
    rule = EnvironmentRule.parse
    assert rule("cpu.*").matches(difference("cpu.numeric_flags", ["avx2"], ["avx512f"]))
    assert rule("cpu").matches(difference("cpu.model", "a", "b"))
    assert not rule("cpu").matches(difference("cpu_count", 1, 2))
    major = rule("runtime.version:major")
    assert major.matches(difference("runtime.version", "1.17.0", "2.0.0"))
    assert not major.matches(difference("runtime.version", "1.17.0", "1.18.3"))
    assert rule("runtime.version:minor").matches(difference("runtime.version", "1.17.0", "1.18.0"))
    assert not rule("runtime.version:minor").matches(difference("runtime.version", "1.17.0", "1.17.1"))
    assert rule("runtime.version:patch").matches(difference("runtime.version", "1.17.0", "1.17.1"))
    policy = EnvironmentPolicy((rule("runtime.version"),), (rule("runtime.version:minor"),))
    assert policy.decide(difference("runtime.version", "1.17.0", "1.17.1")) == ("allow", "runtime.version")
    assert policy.decide(difference("runtime.version", "1.17.0", "1.18.0")) == ("forbid", "runtime.version:minor")
    assert policy.decide(difference("numpy", "1", "2")) is None
    with pytest.raises(UsageError, match="major, minor or patch"):
        rule("runtime.version:build")


def recorded_environment_says(bundle: Path, changes: dict[str, object]) -> None:
    """Rewrite the recorded fingerprint of an unsigned bundle (``a.b`` paths → values)."""
    def change(members: dict[str, bytes]) -> None:
        manifest = json.loads(members["manifest.json"])
        for dotted, value in changes.items():
            node = manifest["environment"]
            *parents, last = dotted.split(".")
            for part in parents:
                node = node[part]
            node[last] = value
        members["manifest.json"] = canonical(manifest)

    tamper(bundle, change)


def test_environment_policy_fails_forbidden_and_accepts_allowed_differences(
        tmp_path: Path, run_cli: RunCli, mlp_files: dict[str, Path]) -> None:
    model = mlp_files["model"]
    x = np.load(mlp_files["x"])
    bundle = tmp_path / "env.ogb"
    ogverify.pack(model, bundle, inputs={"x": x}, claimed_outputs={"y": reference_run(model, x)})
    recorded_environment_says(bundle, {"runtime.version": "0.1.0", "cpu.numeric_flags": ["sse2"]})
    policy = write_policy(tmp_path, '[environment]\nallow = ["cpu.*"]\nforbid = ["runtime.version:major"]\n')
    result, report = check_json(run_cli, bundle, "--policy", policy, "--allow-unsigned", "--no-rerun")
    assert result.exit_code == 1
    assert report["headline"].startswith(
        "FAILED: environment difference forbidden by policy: runtime.version (recorded '0.1.0', here ")
    children = {f["subject"]: f for f in findings_of(report, "environment")[1:]}
    assert children["runtime.version"]["status"] == "fail"
    assert children["runtime.version"]["evidence"]["rule"] == "runtime.version:major"
    assert children["cpu.numeric_flags"]["status"] == "pass"
    assert children["cpu.numeric_flags"]["message"].endswith("; allowed by policy rule 'cpu.*'")
    # Without the policy the same differences only warn.
    result, report = check_json(run_cli, bundle, "--allow-unsigned", "--no-rerun")
    assert result.exit_code == 0, report["headline"]
    (environment,) = [f for f in report["findings"] if f["stage"] == "environment"]
    assert environment["status"] == "warn"


def test_limits_and_check_defaults_apply(bundles: dict[str, Path], run_cli: RunCli, tmp_path: Path) -> None:
    root = bundles["root"]
    keys = f'[signatures]\ntrusted_keys = ["{root / "a.key.pub"}"]\n'
    tight = write_policy(tmp_path, keys + "[limits]\nmax_members = 2\n", "tight.toml")
    result, report = check_json(run_cli, bundles["by-a"], "--policy", tight)
    assert result.exit_code == 3
    assert report["headline"] == "COULD NOT VERIFY: bundle has more than 2 members"
    bad = write_policy(tmp_path, keys + "[limits]\nmax_replay_memory = 1\n", "bad.toml")
    result = run_cli("check", bundles["by-a"], "--policy", bad)
    assert result.exit_code == 2
    assert "max_replay_memory" in single_error_line(result)
    slow = write_policy(tmp_path, keys + "[check]\ntimeout = 0.000001\nrerun = true\n", "slow.toml")
    policy = load_policy(slow)
    assert (policy.timeout, policy.rerun) == (0.000001, True)
    # A --timeout on the command line wins over the policy's.
    result, report = check_json(run_cli, bundles["by-a"], "--policy", slow, "--timeout", "120")
    assert result.exit_code == 0, report["headline"]


def test_api_check_with_a_policy(bundles: dict[str, Path], tmp_path: Path) -> None:
    root = bundles["root"]
    policy = write_policy(tmp_path, f'[signatures]\nmin_signatures = 2\ntrusted_keys = ["{root}"]\n'
                                    "[check]\nrerun = false\n")
    assert ogverify.check(bundles["by-ab"], policy=policy).verdict.value == "verified"
    report = ogverify.check(bundles["by-a"], policy=policy)
    assert report.headline == "FAILED: policy requires 2 trusted signature(s), the bundle has 1"
    reports = ogverify.check_many([root / "*.ogb"], policy=load_policy(policy))
    assert [Path(r.bundle).name for r in reports] == ["by-a.ogb", "by-ab.ogb"]
    assert [r.exit_code for r in reports] == [1, 0]
