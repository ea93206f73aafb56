"""Adversary: legacy rows of every shape, converted to PostgreSQL, give the bot the same answers as on SQLite.

The figures a trader acts on (statistics, today's performance, the risk flags in system_state) must not change
when the desk moves to the server. A value its PostgreSQL column cannot hold (a legacy blob) is kept in zx_raw;
a query that named the column alone read NULL there: a `trading_paused` flag that was set read back as None.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from zepix_store import Store
from zepix_store.compat import TradeDatabase

from ..helpers import Project, run_cli

PID = "v6-logic-01-1min"
NOW = datetime.now()
TRADES: list[tuple[str, str, object, object]] = [
    ("a", "closed", 10.0, NOW.isoformat()),
    ("b", "closed", "-5.5", NOW.isoformat(sep=" ")),
    ("c", "closed", 3, (NOW - timedelta(minutes=1)).isoformat(timespec="seconds")),
    ("d", "closed", None, NOW.isoformat()),
    ("f", "closed", -2.0, int(NOW.timestamp())),
    ("h", "closed", "abc", NOW.isoformat()),
    ("i", "closed", -0.0, NOW.isoformat()),
    ("m", "closed", b"\x01", NOW.isoformat()),
    ("n", "closed", 1.0, "garbage"),
    ("o", "open", None, None),
]
STATE: list[tuple[str, object]] = [
    ("trading_paused", b"1"), ("p1", "1"), ("p2", "True"), ("p3", "false"), ("p5", 1.5), ("p6", None),
    ("p7", "\ue000true"), ("lifetime_loss", "-250.5"),
]


def _answers(configs: Path) -> dict[str, Any]:
    async def store() -> dict[str, Any]:
        async with Store.open(configs) as s:
            db = s.for_plugin(PID)
            return {"stats": await db.get_statistics(), "today": await db.get_todays_performance(),
                    "all_state": await db.get_all_system_state(),
                    "closed": sorted((t["trade_id"], repr(t["pnl"])) for t in await db.get_trades(days=2))}

    found = asyncio.run(store())
    with TradeDatabase(PID, configs) as bot:
        found["bot_today"] = bot.get_todays_performance()
        found["bot_state"] = {k: bot.get_system_state(k, "unset") for k, _ in STATE}
        found["bot_open"] = [t["trade_id"] for t in bot.get_open_trades()]
        found["bot_day"] = sorted(t["trade_id"] for t in bot.get_trades_by_date(NOW.date()))
    return found


def test_legacy_rows_converted_give_the_same_figures_and_flags(project: Project, pg_dsn: str) -> None:
    with TradeDatabase(PID, project.configs) as bot:
        bot.get_open_trades()
        bot.save_trade({"trade_id": "seed", "status": "closed", "pnl": 0.0})  # the file made
    with sqlite3.connect(project.isolated_db(PID)) as conn:
        conn.executemany("INSERT INTO trades (trade_id, status, pnl, close_time, plugin_id) VALUES (?, ?, ?, ?, ?)",
                         [(*t, PID) for t in TRADES])
        conn.executemany("INSERT INTO system_state (key, value, updated_at, plugin_id) VALUES (?, ?, ?, ?)",
                         [(k, v, NOW.isoformat(), PID) for k, v in STATE])
    conn.close()
    target = project.root / "pg-configs"
    shutil.copytree(project.configs, target)
    doc = yaml.safe_load((target / "store.yaml").read_text())
    doc.update(backend="postgresql", postgresql={"dsn": pg_dsn, "schema_prefix": "adv_"},
               plugins_dir="pg-configs/plugins")
    (target / "store.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    done = run_cli("convert", "--to", target, config=project)
    assert done.rc == 0, done.stderr
    on_sqlite, on_pg = _answers(project.configs), _answers(target)
    assert on_sqlite["bot_state"]["trading_paused"] == b"1"
    assert {k: v for k, v in on_pg.items() if v != on_sqlite[k]} == {}
