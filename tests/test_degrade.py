"""One plugin's broken config.json: backup --all, stats and verify serve every other plugin, then exit 2 naming it."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.helpers import Project, run_cli
from zepix_store._sample.legacy import build_legacy_db

BROKEN = "v6-logic-02-5min"
HEALTHY = "v6-logic-01-1min"


@pytest.fixture(scope="module")
def split_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped configs and a legacy shared file split into every isolated file (closed files, copied per test)."""
    project = Project(tmp_path_factory.mktemp("degrade") / "proj")
    build_legacy_db(project.shared_db, trades=200)
    done = run_cli("split", "-q", config=project)
    assert done.rc == 0, done.stderr
    return project.root


@pytest.fixture
def split_project(split_template: Path, tmp_path: Path) -> Project:
    """A copy of the split project with one plugin's config.json broken."""
    project = Project(tmp_path / "proj")
    project.data.rmdir()
    shutil.copytree(split_template / "data", project.data)
    config = project.plugin_config_path(BROKEN)
    config.write_text(config.read_text().replace('"use_shared": false', '"use_shared": "false"'))
    return project


def broken_file(project: Project) -> str:
    return str(project.plugin_config_path(BROKEN))


def test_backup_all_backs_up_the_rest_and_exits_2_naming_the_broken_file(split_project: Project) -> None:
    done = run_cli("backup", "--all", "--json", "-q", config=split_project)
    assert done.rc == 2
    assert broken_file(split_project) in done.stderr and "database.use_shared" in done.stderr
    doc = json.loads(done.stdout)
    assert set(doc["disabled"]) == {BROKEN} and "database.use_shared" in doc["disabled"][BROKEN]
    sources = {Path(b["source"]).name for b in doc["backups"]}
    assert sources == {"trading_bot.db", "zepix_v3_logic_combined.db", *(f"zepix_{p.replace('-', '_')}.db" for p in
                       ("v6-logic-01-1min", "v6-logic-03-15min", "v6-logic-04-1h"))}, sources
    for b in doc["backups"]:
        conn = sqlite3.connect(f"file:{b['backup']}?mode=ro", uri=True)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        finally:
            conn.close()


def test_backup_of_a_healthy_plugin_exits_0_with_a_warning(split_project: Project) -> None:
    done = run_cli("backup", "--plugin", HEALTHY, "-q", config=split_project)
    assert done.rc == 0, done.stderr
    assert Path(done.stdout.strip()).is_file()
    assert f"warning: {broken_file(split_project)}" in done.stderr


def test_stats_shows_every_other_plugin_and_exits_2(split_project: Project) -> None:
    done = run_cli("stats", "--json", "-q", config=split_project)
    assert done.rc == 2
    assert broken_file(split_project) in done.stderr
    doc = json.loads(done.stdout)
    shown = [p["plugin_id"] for p in doc["plugins"]]
    assert BROKEN not in shown and HEALTHY in shown and "v3-logic-01-5min" in shown
    assert sum(p["total_trades"] for p in doc["plugins"]) > 0
    assert set(doc["disabled"]) == {BROKEN}
    human = run_cli("stats", "-q", config=split_project)
    assert human.rc == 2 and HEALTHY in human.stdout


def test_stats_of_another_plugin_works(split_project: Project) -> None:
    done = run_cli("stats", "--plugin", HEALTHY, "--json", "-q", config=split_project)
    assert done.rc == 0, done.stderr
    assert [p["plugin_id"] for p in json.loads(done.stdout)["plugins"]] == [HEALTHY]
    asked = run_cli("stats", "--plugin", BROKEN, "-q", config=split_project)
    assert asked.rc == 2 and broken_file(split_project) in asked.stderr


def test_verify_checks_every_other_plugin_and_exits_2(split_project: Project) -> None:
    done = run_cli("verify", "--json", "-q", config=split_project)
    assert done.rc == 2
    assert broken_file(split_project) in done.stderr
    doc = json.loads(done.stdout)
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks[f"config:{BROKEN}"]["status"] == "FAIL"
    assert broken_file(split_project) in checks[f"config:{BROKEN}"]["detail"]
    assert checks[f"copies:{HEALTHY}"]["status"] == "ok"
    assert doc["failed"] == [f"config:{BROKEN}"]  # nothing else fails because of it
    assert set(doc["disabled"]) == {BROKEN}


def test_verify_a_group_file_holding_a_broken_plugins_rows(split_project: Project) -> None:
    """v3 plugins share one isolated file: the broken one's rows there are not another plugin's (no failure)."""
    config = split_project.plugin_config_path("v3-logic-02-15min")
    config.write_text("{")
    done = run_cli("verify", "--json", "-q", config=split_project)
    assert done.rc == 2
    doc = json.loads(done.stdout)
    assert sorted(doc["failed"]) == ["config:v3-logic-02-15min", f"config:{BROKEN}"]
    checks = {c["name"]: c["status"] for c in doc["checks"]}
    assert checks["attribution:zepix_v3_logic_combined.db"] == "ok"
    assert checks["copies:v3-logic-01-5min"] == "ok"
