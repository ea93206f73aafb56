"""Every README snippet is a tested example: each Python block runs as pasted, each config block loads."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, Project
from zepix_store.config import load_config

BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall((REPO / "README.md").read_text()) if lang == language]


def test_the_readme_has_runnable_examples() -> None:
    assert blocks("python") and blocks("json")


def test_the_readme_test_command_is_the_one_ci_runs() -> None:
    readme = [line.split(" #")[0].strip() for line in blocks("sh")[0].splitlines() if "pytest" in line]
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines() if "pytest" in line
          and not line.startswith("#")]
    assert readme == ci and "postgresql" in ci[0]


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_each_python_block_runs_as_pasted_from_a_project_folder(index: int, project: Project) -> None:
    script = project.root / f"snippet_{index}.py"
    script.write_text(blocks("python")[index])

    done = subprocess.run([sys.executable, str(script)], cwd=project.root, capture_output=True, text=True,
                          timeout=120, check=False, env={"PYTHONPATH": str(REPO), "PATH": ""})

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "never closed" not in done.stderr, done.stderr


@pytest.mark.parametrize("index", range(len(blocks("json"))))
def test_each_plugin_config_block_is_accepted(index: int, project: Project, tmp_path: Path) -> None:
    doc = json.loads(blocks("json")[index])
    path = project.plugin_config_path(doc["plugin_id"])
    path.write_text(json.dumps(doc, indent=2))

    plugin = load_config(project.configs).plugin(doc["plugin_id"])

    assert plugin.use_shared is doc["database"]["use_shared"]
