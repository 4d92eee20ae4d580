"""docs/ci.md and the pre-commit hook: the examples parse, and the flags they use exist."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from ogverify.evidence.schemas import validate
from tests.conftest import RunCli

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "ci.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_yaml_examples_parse_and_use_real_check_flags(run_cli: RunCli) -> None:
    yaml = pytest.importorskip("yaml")
    documents = [yaml.safe_load(block) for block in blocks("yaml")]
    assert len(documents) == 4  # GitHub Actions, GitLab CI, two pre-commit configs
    workflow = documents[0]
    steps = workflow["jobs"]["ogverify"]["steps"]
    assert any("GITHUB_STEP_SUMMARY" in step.get("run", "") for step in steps)
    assert documents[1]["ogverify"]["artifacts"]["reports"]["junit"] == "ogverify-junit.xml"
    help_text = run_cli("check", "--help").stdout
    text = DOC.read_text(encoding="utf-8")
    used = set(re.findall(r"ogverify check [^\n`]*(?:\n\s+--[^\n`]*)*", text))
    flags = {flag for command in used for flag in re.findall(r"(--[a-z][a-z-]+)", command)}
    assert {"--jobs", "--format", "--report", "--output"} <= flags
    for flag in flags:
        assert flag in help_text, f"docs/ci.md uses {flag}, which check does not have"


def test_policy_example_matches_the_schema() -> None:
    (example,) = blocks("toml")
    validate(tomllib.loads(example), "policy-v1.json", "the docs/ci.md policy example")


def test_policy_limits_are_listed_with_their_meaning() -> None:
    """docs/ci.md names every key a policy's [limits] table takes (not a Python class to go and read)."""
    from dataclasses import fields

    from ogverify.evidence.bundle import Limits

    text = DOC.read_text(encoding="utf-8")
    assert "ogverify.evidence.bundle" not in text
    for field in fields(Limits):
        assert re.search(rf"^\s*\| `{field.name}` \| [^|]+ \| \S", text, re.M), field.name


def test_pre_commit_example_pins_no_release_that_does_not_exist() -> None:
    """pre-commit needs a tag or a commit id; no release is tagged yet, so the example says commit id."""
    yaml = pytest.importorskip("yaml")
    remote = [r for d in (yaml.safe_load(b) for b in blocks("yaml")) if isinstance(d, dict) and "repos" in d
              for r in d["repos"] if r["repo"] != "local"]
    assert remote
    for repo in remote:
        assert re.fullmatch(r"[0-9a-f]{40}", str(repo["rev"])), repo["rev"]


def test_pre_commit_hook_runs_the_gate() -> None:
    yaml = pytest.importorskip("yaml")
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert hook["id"] == "ogverify-check"
    assert hook["entry"] == "ogverify check"
    assert hook["pass_filenames"] is False
