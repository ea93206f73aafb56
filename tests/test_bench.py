"""bench: the smoke run completes and reports every figure with a number; speed is never asserted here."""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from zepix_store._bench.reads import Plan, explain, scan_sql

REPO = Path(__file__).resolve().parent.parent
FIGURES = {
    "writes.save_trade", "writes.save_trades_batch", "writes.concurrent_8_isolated_vs_shared", "migrate.upgrade",
    "backup.backup_file", "reads.plugin_statistics", "reads.trades_30_days", "split.time", "split.copy_time",
    "split.peak_memory", "flip.longest_write_hold", "flip.bot_p99_latency",
}
PG_FIGURES = {
    "postgresql.save_trade", "postgresql.save_trade_vs_sqlite_store", "postgresql.concurrent_8_writers",
    "postgresql.save_trades_batch", "postgresql.statistics", "postgresql.statistics_vs_scan",
}


def _bench(*args: str, tmp_path: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ZEPIX_BENCH_PG_DSN"}  # no server unless a test names one
    return subprocess.run([sys.executable, "-m", "zepix_store.bench", *args, "--dir", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    scratch = tmp_path_factory.mktemp("bench")
    # One timed run of each side (the default is the median of 3): every section still runs and reports.
    done = _bench("--quick", "--repeat", "1", "--json", tmp_path=scratch)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout), scratch


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_figures(figures: list[dict[str, Any]]) -> None:
    for fig in figures:
        assert set(fig) >= {"name", "value", "unit", "baseline", "ratio", "goal", "met", "detail"}, fig
        assert "not_measured" not in fig["detail"], fig
        for key in ("value", "baseline", "ratio"):
            assert _is_number(fig[key]) and fig[key] > 0, (fig["name"], key, fig[key])
        assert isinstance(fig["met"], bool) and isinstance(fig["goal"], str) and fig["goal"]
        assert math.isclose(fig["ratio"], fig["value"] / fig["baseline"], rel_tol=1e-9)


def test_quick_json_reports_every_figure_with_a_number(quick: tuple[dict[str, Any], Path]) -> None:
    doc, _ = quick
    figures = doc["figures"]
    assert isinstance(figures, list)
    assert {f["name"] for f in figures} == FIGURES
    _check_figures(figures)
    # no server named: the postgresql section says so and the run still completes
    assert doc["skipped"] == {"postgresql": "skipped: no --postgresql DSN"}
    assert doc["goals"] == len(FIGURES) and doc["goals_met"] == sum(f["met"] for f in figures)
    assert doc["machine"]["nproc"] >= 1 and doc["machine"]["cpu_model"]


def test_quick_run_checks_the_query_plans(quick: tuple[dict[str, Any], Path]) -> None:
    doc, _ = quick
    plans = doc["plans"]
    assert {(p["query"], p["database"]) for p in plans} >= {
        ("reads.plugin_statistics", "trading_bot.db"), ("reads.trades_30_days", "trading_bot.db")}
    for plan in plans:
        assert plan["plan"] and plan["uses_index"] is all(not line.startswith("SCAN trades") for line in plan["plan"])


def test_split_baseline_copies_what_split_copies(quick: tuple[dict[str, Any], Path]) -> None:
    doc, _ = quick
    split = next(f for f in doc["figures"] if f["name"] == "split.time")
    detail = split["detail"]
    # The plain SQL copy must do the same work, or its time is no baseline at all.
    assert detail["baseline_rows_copied"] == detail["rows_copied"] > 0
    assert detail["source_rows"] >= detail["rows_copied"] * 0.9


def test_scratch_folder_is_removed(quick: tuple[dict[str, Any], Path]) -> None:
    _, scratch = quick
    assert list(scratch.iterdir()) == []


def test_plan_check_flags_a_table_scan() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE trades (plugin_id TEXT, status TEXT, pnl REAL)")
    conn.execute("CREATE INDEX i ON trades (plugin_id, status, pnl)")
    query = ("SELECT total(pnl) FROM trades WHERE plugin_id = ? AND status = 'closed'", ("p",))
    assert explain(conn, "q", "db", query).uses_index
    forced = explain(conn, "q", "db", (scan_sql(query[0]), query[1]))
    assert not forced.uses_index and forced.lines == ["SCAN trades"]
    assert not Plan("q", "db", ["SEARCH trades USING INDEX i (plugin_id=?)", "SCAN trades"], "", ()).uses_index


def test_bad_input_exits_2(tmp_path: Path) -> None:
    done = _bench("--repeat", "0", tmp_path=tmp_path, timeout=60)
    assert done.returncode == 2 and "--repeat" in done.stderr
    done = _bench("--config", str(tmp_path / "nowhere"), "--quick", tmp_path=tmp_path, timeout=60)
    assert done.returncode == 2 and "store.yaml" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_postgresql_section_reports_ratios_beside_sqlite(pg_dsn: str, tmp_path: Path) -> None:
    import psycopg

    done = _bench("--quick", "--only", "postgresql", "--repeat", "1", "--json", "--postgresql", pg_dsn,
                  tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout)
    figures = doc["figures"]
    assert {f["name"] for f in figures} == PG_FIGURES and doc["skipped"] == {}
    _check_figures(figures)
    stats = next(f for f in figures if f["name"] == "postgresql.statistics")
    assert any("Index Only Scan" in line for line in stats["detail"]["plan"]), stats["detail"]["plan"]
    assert stats["detail"]["index_only"] is True and stats["detail"]["same_result_as_sqlite"] is True
    assert any("Seq Scan" in line for line in stats["detail"]["scan_plan"]), stats["detail"]["scan_plan"]
    # the bench's schemas are dropped and its scratch files removed
    with psycopg.connect(pg_dsn) as conn:
        left = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'zxb%'").fetchall()
    assert left == [] and list(tmp_path.iterdir()) == []
