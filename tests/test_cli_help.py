"""Every command explains itself the same way, in the project's own words, and says its version."""

from __future__ import annotations

import re
from importlib.metadata import version

import pytest

from tests.helpers import REPO
from zepix_store import cli

# Documents and names a clone of the repository does not have: the README and --help say what they mean instead.
FOREIGN_NAMES = re.compile(r"SPEC|FAULT_PLAN|Option A|Part 8|seed[ _]plan|issue \d", re.IGNORECASE)


def help_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_help_has_the_same_parts_in_the_same_order(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    lines = help_of([name, "--help"], capsys).splitlines()

    assert lines[0].startswith(f"usage: zepix-store {name} ")
    options, examples = lines.index("options:"), lines.index("examples:")
    exit_codes = next(i for i, line in enumerate(lines) if line.startswith("exit codes: 0 "))
    what = [line for line in lines[1:options] if line.strip() and not line.startswith(" ")]
    assert what, "no description of what the command does"
    assert options < examples < exit_codes
    example_lines = [line for line in lines[examples + 1:exit_codes] if line.strip()]
    assert example_lines and all(line.startswith(f"  zepix-store {name}") for line in example_lines), example_lines
    text = "\n".join(lines)
    assert "python -m" not in text
    assert not FOREIGN_NAMES.search(text), FOREIGN_NAMES.search(text)


def test_the_umbrella_help_lists_every_command_with_examples_and_exit_codes(
        capsys: pytest.CaptureFixture[str]) -> None:
    text = help_of(["--help"], capsys)
    for name in cli.COMMANDS:
        assert f"\n  {name} " in text
    assert "\nexamples:\n  zepix-store " in text and "\nexit codes: 0 done" in text
    assert not FOREIGN_NAMES.search(text)


@pytest.mark.parametrize("argv", [["--version"], ["stats", "--version"]], ids=["umbrella", "command"])
def test_version(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert help_of(argv, capsys) == f"zepix-store {version('zepix-store')}\n"


def test_the_readme_names_no_document_a_clone_lacks() -> None:
    readme = (REPO / "README.md").read_text()
    found = [m.group(0) for m in FOREIGN_NAMES.finditer(readme)]
    assert found == []
