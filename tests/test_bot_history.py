"""Real history attributed right (issue 10): the bot's own shape of data, in shared mode and isolated mode.

Every expectation is computed here from SPEC 5's rules (tests/test_split.py `trade_owners`, plain Python that
does not use zepix_store.attribution) over the rows of the generated file, or written out by hand.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Project, connect_ro, copy_database, legacy_rows, query, run_cli, trade_owners
from zepix_store import IsolationError, Store
from zepix_store._sample.bot_history import RE_ENTRIES, SIM_TICKET, build_bot_history
from zepix_store._sample.legacy import LEGACY_SCHEMA, MAPPING

DEFAULT = "legacy"
G1, G2, G3 = "v3-logic-01-5min", "v3-logic-02-15min", "v3-logic-03-1h"
FIGURES = ("total_trades", "winning_trades", "total_pnl")


@pytest.fixture(scope="module")
def bot_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bot") / "trading_bot.db"
    build_bot_history(path, trades=1500, seed=11)
    return path


def source_trades(path: Path) -> dict[int, dict[str, object]]:
    conn = connect_ro(path)
    try:
        return legacy_rows(conn, "trades")
    finally:
        conn.close()


def expected_by_owner(path: Path, mapping: Mapping[str, str] = MAPPING) -> dict[str, dict[str, Any]]:
    """Per owner: its trade rows, re-entry rows, and the figures of its closed trades (numeric pnl in money)."""
    rows = source_trades(path)
    owners = trade_owners(rows, mapping)
    out: dict[str, dict[str, Any]] = {}
    for rowid, row in rows.items():
        (owner,) = owners[rowid]
        e = out.setdefault(owner, {"rows": 0, "re_entries": 0, "total_trades": 0, "winning_trades": 0,
                                   "total_pnl": 0.0})
        e["rows"] += 1
        e["re_entries"] += row["is_re_entry"] == 1
        if row["status"] == "closed":
            e["total_trades"] += 1
            pnl = row["pnl"]
            if isinstance(pnl, (int, float)):
                e["winning_trades"] += pnl > 0
                e["total_pnl"] += pnl
    return out


def stats_json(project: Project, *args: str) -> dict[str, dict[str, Any]]:
    done = run_cli("stats", "--json", *args, config=project)
    assert done.returncode == 0, done.stderr
    return {p["plugin_id"]: p for p in json.loads(done.stdout)["plugins"]}


def assert_figures(got: Mapping[str, Any], want: Mapping[str, Any]) -> None:
    assert got["total_trades"] == want["total_trades"] and got["winning_trades"] == want["winning_trades"]
    assert got["total_pnl"] == pytest.approx(want["total_pnl"])


def rows_per_plugin(path: Path) -> dict[str, int]:
    return {str(p): int(n) for p, n in query(path, "SELECT plugin_id, count(*) FROM trades GROUP BY 1")}


# --- both modes ---------------------------------------------------------------------------------------------------


def test_shared_mode_after_migrate_gives_every_plugin_its_trades_and_re_entries(project: Project,
                                                                                 bot_file: Path) -> None:
    want = expected_by_owner(bot_file)
    assert all(want[p]["re_entries"] > 50 for p in (G1, G2, G3))  # the re-entries count for their plugins
    copy_database(bot_file, project.shared_db)
    project.set_all_shared(True)
    assert run_cli("migrate", "-q", config=project).returncode == 0

    assert rows_per_plugin(project.shared_db) == {p: e["rows"] for p, e in want.items()}
    got = stats_json(project)
    for plugin in (G1, G2, G3):
        assert_figures(got[plugin], want[plugin])
    assert got[DEFAULT]["attributed"] is False  # the default id's trades: a row of their own
    assert_figures(got[DEFAULT], want[DEFAULT])
    assert got["v6-logic-01-1min"]["total_trades"] == 0


def test_isolated_mode_after_split_gives_the_same_figures(project: Project, bot_file: Path) -> None:
    want = expected_by_owner(bot_file)
    copy_database(bot_file, project.shared_db)
    done = run_cli("split", "--json", "-q", config=project)
    assert done.returncode == 0, done.stderr

    group = project.isolated_db(G1)
    assert rows_per_plugin(group) == {p: want[p]["rows"] for p in (G1, G2, G3)}
    re_entries = dict(query(group, "SELECT plugin_id, count(*) FROM trades WHERE is_re_entry = 1 GROUP BY 1"))
    assert re_entries == {p: want[p]["re_entries"] for p in (G1, G2, G3)}
    got = stats_json(project)
    for plugin in (G1, G2, G3):
        assert_figures(got[plugin], want[plugin])
        assert got[plugin]["source"] == "store"
    assert got[DEFAULT]["source"] == "legacy" and got[DEFAULT]["attributed"] is False  # read in the unmigrated file
    assert_figures(got[DEFAULT], want[DEFAULT])
    report = json.loads(done.stdout)["attribution"]
    assert report["trades"] == sum(e["rows"] for e in want.values())
    assert report["by_plugin"] == {p: e["rows"] for p, e in sorted(want.items())}


def test_the_report_counts_trades_per_rule(project: Project, bot_file: Path) -> None:
    rows = source_trades(bot_file)
    copy_database(bot_file, project.shared_db)
    doc = json.loads(run_cli("migrate", "--dry-run", "--json", config=project).stdout)["attribution"]
    by_strategy = sum(1 for r in rows.values() if r["logic_type"] not in MAPPING and r["strategy"] in MAPPING)
    by_logic = sum(1 for r in rows.values() if r["logic_type"] in MAPPING)
    assert doc["by_rule"]["mapping.strategy"] == by_strategy and doc["by_rule"]["mapping.logic_type"] == by_logic
    linked = doc["by_rule"]["link.chain_id"] + doc["by_rule"]["link.profit_chain_id"]
    assert linked == sum(1 for r in rows.values() if r["strategy"] in RE_ENTRIES) - doc["by_rule"]["ambiguous"]
    assert sum(doc["by_rule"].values()) == doc["trades"] == len(rows)
    unmapped = {d["value"]: (d["trades"], d["kept"]) for d in doc["unmapped"]["strategy"]}
    assert unmapped["MANUAL"][0] == unmapped["MANUAL"][1] > 0  # no mapping, no link: all kept by the default id
    assert unmapped["SL_HUNT_RECOVERY"][1] == doc["ambiguous_total"] == 2  # the ambiguous chain's recovery
    assert doc["conflicts_total"] == 1 and doc["conflicts"][0]["trade_id"] == str(SIM_TICKET)
    opens = sum(1 for r in rows.values() if r["status"] == "open")
    assert 0 < doc["superseded_snapshots"] < opens  # running trades keep their one open row


# --- older files, ambiguity, precedence ---------------------------------------------------------------------------


def test_an_older_file_without_logic_type_maps_by_strategy(project: Project, tmp_path: Path) -> None:
    older = tmp_path / "older.db"
    build_bot_history(older, trades=300, seed=4, older=True, logics=("LOGIC1",))
    assert "logic_type" not in [r[1] for r in query(older, "PRAGMA table_info(trades)")]
    assert len(query(older, "SELECT name FROM sqlite_master WHERE type = 'table'")) == 6
    want = expected_by_owner(older)
    copy_database(older, project.shared_db)
    assert run_cli("split", "-q", config=project).returncode == 0
    assert rows_per_plugin(project.isolated_db(G1)) == {G1: want[G1]["rows"]}
    assert want[G1]["rows"] > 200 and want[G1]["re_entries"] > 0
    got = stats_json(project, "--plugin", G1)
    assert_figures(got[G1], want[G1])
    verify = run_cli("verify", "--json", config=project)
    assert verify.returncode == 0, verify.stderr
    checks = {c["name"]: c for c in json.loads(verify.stdout)["checks"]}
    assert checks["attribution:rules"]["status"] == "ok"


def test_verify_warns_when_the_default_id_keeps_most_trades(project: Project, bot_file: Path) -> None:
    copy_database(bot_file, project.shared_db)
    store_yaml = project.configs / "store.yaml"
    store_yaml.write_text(store_yaml.read_text().replace("[logic_type, strategy]", "[logic_type]"))
    assert run_cli("split", "-q", config=project).returncode == 0
    verify = run_cli("verify", "--json", config=project)
    assert verify.returncode == 0, verify.stderr
    check = {c["name"]: c for c in json.loads(verify.stdout)["checks"]}["attribution:rules"]
    assert check["status"] == "warn"
    assert "stay with legacy: check store.yaml's mapping and mapping_columns" in check["detail"]


LINKED = [  # (trade_id, strategy, chain_id, profit_chain_id, session_id, the owner SPEC 5 gives it)
    ("P1", "LOGIC1", "C1", None, "S1", G1),
    ("P2", "LOGIC2", "C9", None, None, G2),
    ("P3", "LOGIC1", "C9", None, None, G1),           # C9: opened by two logics
    ("P4", "LOGIC3", "C4", "B4", "S4", G3),
    ("R1", "SL_HUNT_RECOVERY", "C1", None, "S-R", G1),  # inherits through its chain
    ("R2", "SL_HUNT_RECOVERY", "C9", None, None, DEFAULT),  # two owners on its chain: ambiguous
    ("R3", "PROFIT_RECOVERY", None, "B4", None, G3),  # through the profit chain
    ("R4", "AUTO", "C-NONE", "B4", None, G3),         # its chain leads to no decided trade: the next link decides
    ("R5", "AUTO", "C9", "B4", None, DEFAULT),        # the first link that leads anywhere decides: ambiguous
    ("R6", "AUTO", None, None, "S1", G1),             # through the session
    ("R7", "AUTO", "C1", None, "S4", G1),             # chain before session
    ("R8", "AUTONOMOUS_TP_CONT", "", "", "", DEFAULT),  # empty links link nothing
    ("R9", "AUTO", None, None, "S-R", DEFAULT),       # one step only: R1, its only link, inherited its owner
]


def test_links_decide_in_order_one_step_and_ambiguity_keeps_the_default(project: Project) -> None:
    conn = sqlite3.connect(project.shared_db)
    conn.executescript(LEGACY_SCHEMA)
    conn.executemany("INSERT INTO trades (trade_id, strategy, chain_id, profit_chain_id, session_id, status, pnl) "
                     "VALUES (?, ?, ?, ?, ?, 'closed', 1.0)", [row[:5] for row in LINKED])
    conn.commit()
    conn.close()
    doc = json.loads(run_cli("migrate", "--json", config=project).stdout)["attribution"]
    got = dict(query(project.shared_db, "SELECT trade_id, plugin_id FROM trades"))
    assert got == {row[0]: row[5] for row in LINKED}
    assert doc["ambiguous_total"] == 2
    assert [(a["trade_id"], a["link"], a["value"], a["plugins"]) for a in doc["ambiguous"]] == [
        ("R2", "chain_id", "C9", [G1, G2]), ("R5", "chain_id", "C9", [G1, G2])]
    assert doc["by_rule"] == {"plugin_id": 0, "mapping.logic_type": 0, "mapping.strategy": 4, "link.chain_id": 2,
                              "link.profit_chain_id": 2, "link.session_id": 1, "ambiguous": 2, "default": 2}


# --- open positions and the unattributed rows -------------------------------------------------------------------


def test_after_split_open_trades_are_exactly_those_whose_newest_row_is_open(project: Project, bot_file: Path) -> None:
    rows = source_trades(bot_file)
    owners = trade_owners(rows, MAPPING)
    newest: dict[tuple[str, object], int] = {}
    for rowid, row in rows.items():
        if row["trade_id"] is not None:
            key = (next(iter(owners[rowid])), row["trade_id"])
            newest[key] = max(newest.get(key, 0), rowid)
    copy_database(bot_file, project.shared_db)
    assert run_cli("split", "-q", config=project).returncode == 0

    async def open_trades() -> dict[str, Counter[tuple[object, object]]]:
        async with Store.open(project.configs) as store:
            return {p: Counter((r["trade_id"], r["open_time"]) for r in await store.for_plugin(p).get_open_trades())
                    for p in (G1, G2, G3)}

    got = asyncio.run(open_trades())
    positions = 0
    for plugin in (G1, G2, G3):
        want = Counter((row["trade_id"], row["open_time"]) for rowid, row in rows.items()
                       if owners[rowid] == {plugin} and row["status"] == "open"
                       and (row["trade_id"] is None or newest[(plugin, row["trade_id"])] == rowid))
        assert got[plugin] == want, plugin
        positions += sum(want.values())
        snapshots = sum(1 for r, row in rows.items() if owners[r] == {plugin} and row["status"] == "open")
        assert snapshots > 5 * max(1, sum(want.values()))  # what a naive `status = 'open'` would show
    assert positions > 0


def test_unattributed_is_a_read_only_handle(project: Project, bot_file: Path) -> None:
    copy_database(bot_file, project.shared_db)
    assert run_cli("migrate", "-q", config=project).returncode == 0
    want = expected_by_owner(bot_file)[DEFAULT]

    async def use() -> dict[str, Any]:
        async with Store.open(project.configs) as store:
            handle = store.unattributed()
            stats = await handle.get_statistics()
            refused = []
            for write in (handle.save_trade({"trade_id": "X", "status": "open"}),
                          handle.set_system_state("trading_paused", "1"),
                          handle.create_session({"session_id": "S-X", "symbol": "EURUSD", "direction": "buy"})):
                with pytest.raises(IsolationError, match="read-only"):
                    await write
                refused.append(True)
            return {"stats": stats, "refused": refused, "state": await handle.get_all_system_state()}

    before = query(project.shared_db, "SELECT count(*), total(pnl) FROM trades")
    got = asyncio.run(use())
    assert got["refused"] == [True, True, True]
    assert got["stats"]["total_trades"] == want["total_trades"]
    assert got["stats"]["total_pnl"] == pytest.approx(want["total_pnl"])
    assert "trading_paused" in got["state"]
    assert query(project.shared_db, "SELECT count(*), total(pnl) FROM trades") == before
