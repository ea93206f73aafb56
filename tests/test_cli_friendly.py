"""The command line meets a person halfway: configs found from any folder, suggestions, JSON errors, case."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import Project, child_env, run_cli


def in_folder(folder: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zepix_store", *argv], cwd=folder, capture_output=True, text=True,
                          timeout=120, env=child_env(), check=False)


def test_commands_find_the_configs_folder_from_any_folder_inside_the_project(project: Project) -> None:
    (project.data / "deep" / "er").mkdir(parents=True)
    for folder in (project.root, project.data, project.data / "deep" / "er"):
        done = in_folder(folder, "stats", "--json", "-q")
        assert done.returncode == 0, done.stderr
        assert str(project.data) in done.stdout  # the files of this project, not of the checkout
    done = in_folder(project.root.parent, "stats", "-q")
    assert done.returncode == 2 and "configs/store.yaml" in done.stderr


def test_config_may_name_the_folder_or_its_store_yaml(project: Project) -> None:
    by_folder = run_cli("stats", "--json", "-q", config=project.configs)
    by_file = run_cli("stats", "--json", "-q", "--config", project.configs / "store.yaml")
    assert by_folder.rc == by_file.rc == 0
    assert json.loads(by_folder.stdout) == json.loads(by_file.stdout)


def test_config_naming_another_file_says_what_to_give(project: Project) -> None:
    (project.configs / "store.yml").write_text((project.configs / "store.yaml").read_text())
    for wrong in (project.configs / "store.yml", project.configs / "plugins.json"):
        done = run_cli("stats", "-q", "--config", wrong)
        assert done.rc == 2, done.stderr
        assert f"--config {wrong}: give the config folder or its store.yaml" in done.stderr
        assert "store.yml/store.yaml" not in done.stderr


def test_a_mistyped_plugin_or_command_gets_a_suggestion_and_json_gets_an_error_object(project: Project) -> None:
    done = run_cli("stats", "--json", "--plugin", "v6-logic-01-1mn", config=project)
    assert done.rc == 2
    assert "did you mean v6-logic-01-1min?" in done.stderr
    doc = json.loads(done.stdout)
    assert doc["exit_code"] == 2 and doc["command"] == "stats" and "did you mean v6-logic-01-1min?" in doc["error"]
    typo = in_folder(project.root, "splt")
    assert typo.returncode == 2 and "no command 'splt'; did you mean split?" in typo.stderr


def test_a_currency_code_is_read_in_any_case(project: Project) -> None:
    done = run_cli("stats", "--json", "-q", "--currency", "usd", config=project)
    assert done.rc == 0, done.stderr
    assert json.loads(done.stdout)["currency"] == "USD"


def test_configs_found_above_this_folder_are_named_before_anything_is_done(project: Project) -> None:
    # A folder inside another project (a bot checked out there): the command acts on that project's files,
    # whose paths it prints relative to that project, so it names the configs it found first.
    inner = project.root / "other-bot" / "src"
    inner.mkdir(parents=True)
    for argv in (("stats",), ("stats", "-q"), ("split", "--dry-run", "-q")):
        done = in_folder(inner, *argv)
        assert f"using the configs in {project.configs}" in done.stderr, (argv, done.stderr)
    here = in_folder(project.root, "stats", "-q")
    assert here.returncode == 0 and "using the configs" not in here.stderr
