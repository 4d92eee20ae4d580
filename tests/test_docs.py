"""Documentation that must match the program: README's --help block and the man page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import RunCli
from tools.gen_man import MAN_PATH, render

ROOT = Path(__file__).resolve().parents[1]


def test_readme_help_matches_the_cli(run_cli: RunCli) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- BEGIN ogverify --help -->\n```text\n(.*?)```\n<!-- END ogverify --help -->", readme, re.S)
    assert match is not None, "README lacks the --help block"
    assert match.group(1) == run_cli("--help").stdout


def test_man_page_is_current() -> None:
    assert MAN_PATH.read_text(encoding="utf-8") == render(), "run: python -m tools.gen_man"


def test_readme_names_the_test_command_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "python -m pytest -q" in readme
    assert "python -m pytest -q" in ci


def test_help_man_page_and_readme_agree_on_exit_codes_and_synopsis(run_cli: RunCli) -> None:
    from ogverify.errors import EXIT_MEANINGS

    help_text = " ".join(run_cli("--help").stdout.split())
    page = MAN_PATH.read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for code, (word, why) in EXIT_MEANINGS.items():
        assert f"{int(code)} {word} ({why})" in help_text
        assert f"\\fB{int(code)}\\fR\n{word}: {why}".replace("-", "\\-") in page
        assert f"| {int(code)} | {word}: {why} |" in readme
    usage = run_cli("--help").stdout.splitlines()[0]
    assert usage == "Usage: ogverify [OPTIONS] COMMAND [ARGS]..."
    assert "\\fBogverify\\fR [\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]..." in page


def test_man_page_describes_the_policy_file() -> None:
    page = MAN_PATH.read_text(encoding="utf-8")
    assert "\\fBogverify.toml\\fR" in page and "\\-\\-policy" in page and "[limits]" in page


def test_readme_python_example_runs_after_the_worked_example(tmp_path: Path, run_cli: RunCli,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The Python API block, run where the worked example left off (its key and run.ogb exist)."""
    import shutil

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Python API"):]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None
    shutil.copytree(ROOT / "fixtures" / "models", tmp_path / "fixtures" / "models")
    monkeypatch.chdir(tmp_path)
    assert run_cli("keygen", "--out", "auditor.key").exit_code == 0
    (tmp_path / "run.ogb").write_bytes(b"the worked example's bundle")
    exec(compile(block.group(1), "README.md", "exec"), {"__name__": "readme"})
    assert (tmp_path / "evidence" / "run-000001.ogb").is_file()
    assert (tmp_path / "run.ogb").read_bytes() == b"the worked example's bundle"


def test_readme_shows_what_keygen_writes() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "--trusted-key producer.pub" not in readme  # keygen writes producer.key.pub
    assert "wrote auditor.key (private, keep it secret) and auditor.key.pub\nkeyid " in readme
    assert not re.search(r"sha256:[0-9a-f]{8}\.\.\.", readme), "the CLI prints digests in full"
