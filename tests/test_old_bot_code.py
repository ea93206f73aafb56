"""The bot's old TradeDatabase beside the store: positional INSERTs fail after an in-place migrate, never after split."""

from __future__ import annotations

import sqlite3
from datetime import datetime

import pytest

from zepix_store.compat import TradeDatabase
from zepix_store.legacy_data import build_legacy_db
from zepix_store.migrate import main as migrate_main
from zepix_store.split import main as split_main

from .conftest import Project

OLD_SL_EVENT = "INSERT INTO sl_events VALUES (?,?,?,?,?,?,?,?)"  # the bot's own statement


def _old_bot_write(path: object) -> None:
    conn = sqlite3.connect(str(path))
    try:
        with conn:
            conn.execute(OLD_SL_EVENT, (None, "T1", "EURUSD", 1.0, 1.1, datetime.now().isoformat(), False, False))
    finally:
        conn.close()


def _schema(path: object) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
    finally:
        conn.close()


def test_migrate_says_old_code_breaks_and_it_does(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    build_legacy_db(project.shared_db, trades=50)
    assert migrate_main(["--config", str(project.configs)]) == 0
    out = capsys.readouterr().out
    assert "positional INSERT" in out and "zepix_store.compat import TradeDatabase" in out
    with pytest.raises(sqlite3.OperationalError, match="9 columns but 8 values"):
        _old_bot_write(project.shared_db)
    project.set_use_shared("v6-logic-01-1min", True)
    with TradeDatabase("v6-logic-01-1min", project.configs) as db:
        db.save_sl_event("T1", "EURUSD", 1.0, 1.1)  # the one-line switch works on the migrated file
        assert db.get_sl_recovery_stats()["total_sl_hits"] == 1


def test_split_leaves_the_shared_schema_so_old_code_keeps_working(project: Project) -> None:
    build_legacy_db(project.shared_db, trades=50)
    before = _schema(project.shared_db)
    assert split_main(["--config", str(project.configs), "-q"]) == 0
    assert _schema(project.shared_db) == before
    _old_bot_write(project.shared_db)  # no column was added to the ten tables
