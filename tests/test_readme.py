"""Every snippet is a tested example: each Python block of the README runs as pasted, twice, leaving no rows in
the folder it ran from; each config block of the README and docs/ loads; every relative link points at a file."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.helpers import REPO, Project
from zepix_store.config import load_config

BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


LINK = re.compile(r"\]\(([^)\s]+)\)")  # [text](target)
PAGES = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]


def blocks(language: str, pages: Sequence[Path] = (REPO / "README.md",)) -> list[str]:
    return [body for page in pages for lang, body in BLOCK.findall(page.read_text()) if lang == language]


def test_the_readme_has_runnable_examples() -> None:
    assert blocks("python") and blocks("json", PAGES)


def anchors(page: Path) -> set[str]:
    """The `#fragment` of each heading, as GitHub makes it: lower case, punctuation dropped, spaces as `-`."""
    headings = re.findall(r"^#+ (.+)$", BLOCK.sub("", page.read_text()), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_at_a_file_and_heading_that_exist(page: Path) -> None:
    targets = [t for t in LINK.findall(page.read_text()) if "://" not in t and not t.startswith("mailto:")]
    missing = []
    for target in targets:
        path, _, fragment = target.partition("#")
        file = page.parent / path if path else page
        if not file.exists() or (fragment and file.suffix == ".md" and fragment not in anchors(file)):
            missing.append(target)
    assert not missing, f"{page.name}: links to nothing: {missing}"


def test_the_readme_links_every_docs_page_and_shows_the_demos_picture() -> None:
    readme = REPO / "README.md"
    linked = {(readme.parent / t.partition("#")[0]).resolve() for t in LINK.findall(readme.read_text())}
    assert {p.resolve() for p in PAGES[2:]} <= linked  # no page of docs/ only reachable by guessing
    assert (REPO / "docs" / "equity.png").resolve() in linked
    assert (REPO / "docs" / "equity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_readme_test_command_is_the_one_ci_runs() -> None:
    readme = [line.split(" #")[0].strip() for line in blocks("sh")[0].splitlines() if "pytest" in line]
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines() if "pytest" in line
          and not line.startswith("#")]
    assert readme == ci and "postgresql" in ci[0]


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_each_python_block_runs_twice_as_pasted_and_leaves_no_rows_behind(index: int, project: Project) -> None:
    script = project.root / f"snippet_{index}.py"
    script.write_text(blocks("python")[index])

    for _ in range(2):  # a reader runs an example again: a session or trade it made must not be in the way
        done = subprocess.run([sys.executable, str(script)], cwd=project.root, capture_output=True, text=True,
                              timeout=120, check=False, env={"PYTHONPATH": str(REPO), "PATH": ""})
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr and "never closed" not in done.stderr, done.stderr
    assert list(project.data.iterdir()) == []  # run from a checkout, its data/ stays as it was


@pytest.mark.parametrize("index", range(len(blocks("json", PAGES))))
def test_each_plugin_config_block_is_accepted(index: int, project: Project, tmp_path: Path) -> None:
    doc = json.loads(blocks("json", PAGES)[index])
    path = project.plugin_config_path(doc["plugin_id"])
    path.write_text(json.dumps(doc, indent=2))

    plugin = load_config(project.configs).plugin(doc["plugin_id"])

    assert plugin.use_shared is doc["database"]["use_shared"]
