"""demo: one command from a fresh checkout builds a legacy database and runs migrate, split, verify, stats."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import REPO, query, run_cli
from zepix_store.config import load_config
from zepix_store.demo import write_project


def test_demo_configs_match_the_shipped_ones(tmp_path: Path) -> None:
    demo = load_config(write_project(tmp_path))
    shipped = load_config(REPO / "configs")
    assert demo.mapping == shipped.mapping
    assert demo.default_plugin_id == shipped.default_plugin_id
    assert {p: (c.use_shared, c.isolated_db.relative_to(demo.root) if c.isolated_db else None)
            for p, c in demo.plugins.items()} == \
           {p: (c.use_shared, c.isolated_db.relative_to(shipped.root) if c.isolated_db else None)
            for p, c in shipped.plugins.items()}


def test_the_packaged_configs_are_the_checkouts_byte_for_byte() -> None:
    packaged = REPO / "zepix_store" / "_sample" / "configs"
    files = sorted(p.relative_to(REPO / "configs") for p in (REPO / "configs").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(packaged) for p in packaged.rglob("*") if p.is_file())
    assert all((packaged / f).read_bytes() == (REPO / "configs" / f).read_bytes() for f in files)


def test_demo_runs_every_step_and_makes_the_files(tmp_path: Path) -> None:
    scratch = tmp_path / "demo"
    result = run_cli("demo", "--dir", str(scratch), "--trades", "800", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [s for s in doc["steps"]] == ["migrate", "split", "verify", "stats"]
    assert all(step["exit_code"] == 0 for step in doc["steps"].values())
    data = scratch / "data"
    for name in ("trading_bot.db", "zepix_v3_logic_combined.db", "zepix_v6_logic_01_1min.db"):
        assert str(data / name) in doc["files"]
    assert any("backups" in f for f in doc["files"])
    shared_trades = query(data / "trading_bot.db", "SELECT count(*) FROM trades")[0][0]
    assert shared_trades == doc["legacy_rows"]["trades"]
    v3 = query(data / "zepix_v3_logic_combined.db",
               "SELECT plugin_id, count(*) FROM trades GROUP BY plugin_id ORDER BY plugin_id")
    assert {p for p, _ in v3} == {"v3-logic-01-5min", "v3-logic-02-15min", "v3-logic-03-1h"}


def test_demo_human_output_names_steps_and_files(tmp_path: Path) -> None:
    result = run_cli("demo", "--dir", str(tmp_path / "d"), "--trades", "300")
    assert result.returncode == 0, result.stderr
    for heading in ("legacy database", "migrate", "split", "verify", "stats", "files made"):
        assert heading in result.stdout
    assert str(tmp_path / "d" / "data" / "trading_bot.db") in result.stdout
    assert len(result.stdout.splitlines()) <= 60, result.stdout  # a screenful: it printed 240 lines
    assert not [line for line in result.stdout.splitlines() if " 0 new rows" in line or line.startswith("ok ")]
    picture = tmp_path / "d" / "equity.png"  # what stats --plot draws, named where to look
    assert f"== equity curves: {picture}" in result.stdout
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_verbose_prints_every_steps_whole_report(tmp_path: Path) -> None:
    result = run_cli("demo", "--dir", str(tmp_path / "d"), "--trades", "300", "-v", "--plot", str(tmp_path / "e.svg"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("ok    copies:v3-logic-01-5min: ") for line in lines)  # every verify check
    assert any(line.startswith("table ") and " action " in line for line in lines)  # migrate's owners per table
    assert (tmp_path / "e.svg").read_text().lstrip().startswith("<?xml")


def test_demo_refuses_a_folder_with_files(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    result = run_cli("demo", "--dir", str(tmp_path))
    assert result.returncode == 2
    assert "--dir must be an empty or new folder" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
