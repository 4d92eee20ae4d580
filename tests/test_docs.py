"""Documentation that must match the program: README's --help block and the man page."""

from __future__ import annotations

import re
from pathlib import Path

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
