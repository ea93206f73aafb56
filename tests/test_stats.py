"""stats: figures equal an independent computation, windows, table/JSON/CSV output, the plot, read-only legacy."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import os
import random
import sqlite3
import struct
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Project, query, run_cli
from zepix_store import Store, load_config
from zepix_store._plot import PLOT_SIZE
from zepix_store._sample.legacy import LEGACY_SCHEMA, build_legacy_db, write_wal_only_trades
from zepix_store.ops.stats import collect_stats
from zepix_store.schema import SCHEMA_VERSION

REPO = Path(__file__).resolve().parent.parent
W, L, P, E = "v6-logic-01-1min", "v6-logic-02-5min", "v6-logic-03-15min", "v6-logic-04-1h"
G1, G2, G3, GC = "v3-logic-01-5min", "v3-logic-02-15min", "v3-logic-03-1h", "v3-logic-combined"
ALL = [G1, G2, G3, GC, W, L, P, E]  # the shipped configs, in the order stats lists them
FMT = "%Y-%m-%d %H:%M:%S"
MONEY = ("total_pnl", "avg_pnl", "best_trade", "worst_trade", "gross_profit", "gross_loss", "max_drawdown",
         "win_rate")


def epoch(text: str) -> int:
    return int(datetime.strptime(text, FMT).replace(tzinfo=UTC).timestamp())


def closed(trade_id: str, pnl: object, close_time: object) -> dict[str, object]:
    return {"trade_id": trade_id, "pnl": pnl, "close_time": close_time, "status": "closed"}


HISTORY: dict[str, list[dict[str, object]]] = {
    W: [
        closed("w1", 10.0, "2024-01-01 10:00:00"),
        closed("w2", 20.0, "2024-01-02T09:00:00"),           # legacy 'T' timestamp
        closed("w3", -15.0, "2024-01-03 10:00:00"),
        closed("w4", "n/a", "2024-01-03 12:00:00"),          # text pnl: a trade, in no money figure
        closed("w5", -20.0, epoch("2024-01-04 12:00:00")),   # an epoch number; drawdown 30 -> -5 = 35
        closed("w6", 50.0, "2024-01-05 10:00:00"),           # a new peak at 45
        closed("w7", -10.0, "2024-01-05 18:00:00"),
        closed("w8", 15.0, "2024-01-06 10:00:00"),           # w8, w9: one close time, ordered by id: peak 50,
        closed("w9", -50.0, "2024-01-06 10:00:00"),          # then 0: drawdown 50 (60 in the other order)
        closed("w10", 70.0, "2024-01-07 10:00:00"),          # recovery: the max drawdown is not at the end
        closed("w11", -5.0, "2024-01-08 10:00:00"),
        {"trade_id": "w12", "pnl": 999.0, "status": "open"},  # open: not counted
    ],
    L: [closed("l1", -5.0, "2024-01-02 00:00:00"), closed("l2", -7.5, "2024-01-03 00:00:00")],  # only losses
    P: [closed("p1", 3.0, "2024-01-02 00:00:00"), closed("p2", 4.0, "2024-01-03 00:00:00")],   # only wins
    G1: [closed("g1", 1.0, "2024-01-01 00:00:00")],   # G1 and G2 share one file: isolation by plugin_id
    G2: [closed("g1", -2.0, "2024-01-01 00:00:00")],
}


# -- the independent computation ------------------------------------------------------------------------
def to_datetime(value: object) -> datetime | None:
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC).replace(tzinfo=None)
    return None if value is None else datetime.fromisoformat(str(value))


def expected(trades: Sequence[Mapping[str, object]], since: str | None = None,
             before: str | None = None) -> dict[str, Any]:
    """The figures computed in Python from the trades as written (insertion order = id order)."""
    lo = datetime.strptime(since, FMT) if since else None
    hi = datetime.strptime(before, FMT) if before else None
    rows = []
    for i, t in enumerate(trades):
        when = to_datetime(t.get("close_time"))
        if t.get("status") != "closed" or (lo and (when is None or when < lo)) or (hi and (when is None or when >= hi)):
            continue
        rows.append((when, i, t.get("pnl")))
    priced = [(w, i, p) for w, i, p in rows if isinstance(p, (int, float))]
    pnls = [p for _, _, p in priced]
    wins, losses = [p for p in pnls if p > 0], [p for p in pnls if p < 0]
    gp, gl = sum(wins), -sum(losses)
    equity = peak = drawdown = 0.0
    for _, _, p in sorted(priced, key=lambda r: (r[0] is not None, r[0] or datetime.min, r[1])):
        equity += p
        peak = max(peak, equity)
        drawdown = max(drawdown, peak - equity)
    return {
        "total_trades": len(rows), "winning_trades": len(wins), "losing_trades": len(losses),
        "unpriced_trades": len(rows) - len(priced),
        "win_rate": 100.0 * len(wins) / len(priced) if priced else None,
        "total_pnl": float(sum(pnls)), "avg_pnl": sum(pnls) / len(pnls) if pnls else None,
        "best_trade": max(pnls, default=None), "worst_trade": min(pnls, default=None),
        "gross_profit": float(gp), "gross_loss": float(gl),
        "profit_factor": gp / gl if gl else None,  # no loss: JSON has no infinity (the table says "inf")
        "max_drawdown": drawdown,
    }


def assert_figures(got: Mapping[str, Any], want: Mapping[str, Any]) -> None:
    """`got` from --json: money and win% rounded to cents, profit factor to 4 places."""
    for key, value in want.items():
        if isinstance(value, float):
            assert got[key] == round(value, 4 if key == "profit_factor" else 2), key
        else:
            assert got[key] == value, key


# -- helpers --------------------------------------------------------------------------------------------
def seed(project: Project, history: Mapping[str, Sequence[Mapping[str, object]]]) -> None:
    """Write `history`; a text pnl (which the API refuses, SPEC 4) is put in by hand, as legacy data holds it."""
    legacy = {(p, t["trade_id"]): t["pnl"] for p, ts in history.items() for t in ts if isinstance(t.get("pnl"), str)}

    async def write() -> None:
        async with Store.open(project.configs) as store:
            for plugin_id, trades in history.items():
                await store.for_plugin(plugin_id).save_trades(
                    [{**t, "pnl": None} if (plugin_id, t["trade_id"]) in legacy else t for t in trades])
    asyncio.run(write())
    config = load_config(project.configs)
    for (plugin_id, trade_id), pnl in legacy.items():
        conn = sqlite3.connect(config.plugin(plugin_id).db_path)
        with conn:
            conn.execute("UPDATE trades SET pnl = ? WHERE plugin_id = ? AND trade_id = ?", (pnl, plugin_id, trade_id))
        conn.close()


def stats_json(project: Project, *args: str) -> dict[str, dict[str, Any]]:
    done = run_cli("stats", "--json", *args, config=project)
    assert done.returncode == 0, done.stderr
    return {p["plugin_id"]: p for p in json.loads(done.stdout)["plugins"]}


@pytest.fixture
def history(project: Project) -> Project:
    seed(project, HISTORY)
    return project


# -- figures --------------------------------------------------------------------------------------------
def test_figures_equal_an_independent_computation(history: Project) -> None:
    got = stats_json(history)
    assert list(got) == ALL
    for plugin_id in ALL:
        assert_figures(got[plugin_id], expected(HISTORY.get(plugin_id, [])))
    # the same figures, worked out by hand
    assert_figures(got[W], {"total_trades": 11, "winning_trades": 5, "losing_trades": 5, "unpriced_trades": 1,
                            "total_pnl": 65.0, "avg_pnl": 6.5, "best_trade": 70.0, "worst_trade": -50.0,
                            "profit_factor": 1.65, "max_drawdown": 50.0, "win_rate": 50.0})
    assert_figures(got[L], {"profit_factor": 0.0, "win_rate": 0.0, "max_drawdown": 12.5, "total_pnl": -12.5})
    assert_figures(got[P], {"profit_factor": None, "win_rate": 100.0, "max_drawdown": 0.0, "total_pnl": 7.0})
    assert_figures(got[G1], {"total_trades": 1, "total_pnl": 1.0})
    assert_figures(got[G2], {"total_trades": 1, "total_pnl": -2.0, "max_drawdown": 2.0})


def test_plugin_with_no_file_shows_zeros_and_no_file_is_created(history: Project) -> None:
    got = stats_json(history, "--plugin", E, "--plugin", G3)
    assert list(got) == [E, G3]
    for plugin_id in (E, G3):
        assert_figures(got[plugin_id], {"total_trades": 0, "winning_trades": 0, "total_pnl": 0.0, "avg_pnl": None,
                                        "profit_factor": None, "win_rate": None, "max_drawdown": 0.0})
    assert got[E]["source"] == "missing" and got[G3]["source"] == "store"
    assert not history.isolated_db(E).exists()


def test_stats_agree_with_the_library_statistics(history: Project) -> None:
    async def library() -> dict[str, dict[str, Any]]:
        async with Store.open(history.configs) as store:
            return await store.get_all_plugin_statistics()
    lib = asyncio.run(library())
    got = stats_json(history)
    for plugin_id in (W, L, P, G1, G2):
        for key in ("total_trades", "winning_trades", "losing_trades", "total_pnl", "avg_pnl", "best_trade",
                    "worst_trade"):
            assert got[plugin_id][key] == pytest.approx(lib[plugin_id][key]), (plugin_id, key)


@pytest.mark.parametrize(("args", "since", "before", "trades"), [
    (("--since", "2024-01-02", "--until", "2024-01-04"), "2024-01-02 00:00:00", "2024-01-05 00:00:00", 4),
    # raw text would rank '2024-01-02T09:00:00' after '2024-01-02 12:00:00': the 'T' trade must stay out
    (("--since", "2024-01-02 12:00:00"), "2024-01-02 12:00:00", None, 9),
    # the epoch trade closes at exactly 12:00:00: an --until time is inclusive
    (("--until", "2024-01-04 12:00:00"), None, "2024-01-04 12:00:01", 5),
    (("--since", "2024-01-05", "--until", "2024-01-06"), "2024-01-05 00:00:00", "2024-01-07 00:00:00", 4),
], ids=["dates", "since-time-T", "until-time-epoch", "recovery-only"])
def test_since_until_window(history: Project, args: tuple[str, ...], since: str | None, before: str | None,
                            trades: int) -> None:
    done = run_cli("stats", "--json", "--plugin", W, *args, config=history)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    until = (datetime.strptime(before, FMT) - timedelta(seconds=1)).strftime(FMT) if before else None
    assert doc["window"] == {"since": since, "until": until, "days": None}  # --until's last second, inclusive
    want = expected(HISTORY[W], since, before)
    assert want["total_trades"] == trades
    assert_figures(doc["plugins"][0], want)


def test_days_window(project: Project) -> None:
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    trades = [closed("d1", 1.0, (now - timedelta(days=2)).strftime(FMT)),
              closed("d2", 2.0, (now - timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%S")),
              closed("d3", 4.0, epoch((now - timedelta(days=40)).strftime(FMT))),
              closed("d4", 8.0, (now - timedelta(days=400)).strftime(FMT))]
    seed(project, {L: trades})
    for days, count, total in ((7, 1, 1.0), (30, 2, 3.0), (60, 3, 7.0), (1000, 4, 15.0)):
        got = stats_json(project, "--plugin", L, "--days", str(days))[L]
        assert (got["total_trades"], got["total_pnl"]) == (count, total), days


# -- output formats -------------------------------------------------------------------------------------
def test_table_has_one_aligned_row_per_plugin(history: Project) -> None:
    done = run_cli("stats", config=history)  # the umbrella command, same table
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "all closed trades:"
    header, rule = lines[1], lines[2]
    assert header.split()[:5] == ["plugin", "trades", "wins", "losses", "win%"]
    rows = lines[3:3 + len(ALL)]
    assert [r.split()[0] for r in rows] == ALL
    gaps = [i for i, ch in enumerate(rule) if ch == " "]
    for row in [header, *rows]:
        assert all(i >= len(row) or row[i] == " " for i in gaps), row  # every column starts where the rule says
    empty = rows[ALL.index(E)].split()
    assert empty[1:11] == ["0", "0", "0", "-", "0.00", "-", "-", "-", "-", "0.00"]
    assert empty[11:] == ["data/zepix_v6_logic_04_1h.db", "(no", "file", "yet)"]
    assert rows[ALL.index(P)].split()[9] == "inf"
    notes = lines[3 + len(ALL):]
    assert notes == [f"note: {W}: 1 closed trade with a pnl that is NULL, not a number or not finite (counted "
                     "as trades, left out of PnL, win%, PF and max DD)"]


def test_csv_parses_and_matches_json(history: Project) -> None:
    done = run_cli("stats", "--csv", config=history)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["plugin_id"] for r in rows] == ALL
    by_id = {r["plugin_id"]: r for r in rows}
    assert by_id[P]["profit_factor"] == ""  # no loss: no number (never the text "inf")
    assert by_id[E]["profit_factor"] == "" and by_id[E]["total_trades"] == "0"
    got = stats_json(history)
    for plugin_id in ALL:
        for key in MONEY:
            value = got[plugin_id][key]
            assert by_id[plugin_id][key] == ("" if value is None else str(value)), (plugin_id, key)


@pytest.mark.parametrize(("args", "message"), [
    (("--plugin", "nope"), "no plugin config for 'nope'"),
    (("--since", "2024-13-01"), "--since: '2024-13-01' is not a date"),
    (("--until", "yesterday"), "--until: 'yesterday' is not a date"),
    (("--since", "2024-02-01", "--until", "2024-01-01"), "the window is empty"),
    (("--days", "0"), "--days: must be a whole number of days"),
    (("--days", "x"), "invalid int value"),
    (("--days", "3", "--since", "2024-01-01"), "cannot be combined"),
    (("--json", "--csv"), "choose one output format"),
])
def test_bad_input_exits_2_with_one_line(project: Project, args: tuple[str, ...], message: str) -> None:
    done = run_cli("stats", *args, config=project)
    assert done.returncode == 2
    assert done.stdout == ""
    assert message in done.stderr and done.stderr.strip().splitlines()[-1].startswith("zepix-store stats: error:")
    assert not any(project.data.iterdir())


def test_newer_schema_exits_5(project: Project) -> None:
    seed(project, {W: HISTORY[W][:1]})
    conn = sqlite3.connect(project.isolated_db(W))
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    done = run_cli("stats", "--plugin", W, config=project)
    assert done.returncode == 5
    assert "newer" in done.stderr and len(done.stderr.strip().splitlines()) == 1


# -- plot -----------------------------------------------------------------------------------------------
def test_plot_writes_a_png_of_the_documented_size(history: Project, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    (tmp_path / "plots").mkdir()
    out = tmp_path / "plots" / "equity.png"
    done = run_cli("stats", "--plot", str(out), "--json", config=history)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["plot"] == str(out)
    data = out.read_bytes()  # a PNG, not a database
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == PLOT_SIZE
    assert [p.name for p in out.parent.iterdir()] == ["equity.png"]  # no temporary file left


def test_plot_without_matplotlib_exits_2(history: Project, tmp_path: Path) -> None:
    out = tmp_path / "equity.png"
    blocked = "import sys; sys.modules['matplotlib'] = None; from zepix_store.stats import main; sys.exit(main())"
    done = subprocess.run([sys.executable, "-c", blocked, "--config", str(history.configs), "--plot", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip() == ("zepix-store stats: error: --plot needs matplotlib, which is not installed: "
                                   "pip install 'zepix-store[plot]'")
    assert not out.exists()


async def test_equity_curve_is_downsampled_keeping_extremes(project: Project) -> None:
    rng = random.Random(5)
    start = datetime(2024, 1, 1)
    trades = [closed(f"c{i}", round(rng.uniform(-10, 10), 2), (start + timedelta(minutes=i)).strftime(FMT))
              for i in range(1000)]
    async with Store.open(project.configs) as store:
        await store.for_plugin(W).save_trades(trades)
    full, equity = [], 0.0
    for t in trades:
        equity += float(t["pnl"])  # type: ignore[arg-type]
        full.append((t["close_time"], equity))
    config = load_config(project.configs)
    report = await collect_stats(config, [W], curves=True, curve_limit=60)
    curve = report.curves[W]
    assert 10 < len(curve) <= 60
    assert curve[-1][0] == full[-1][0] and curve[-1][1] == pytest.approx(full[-1][1])
    points = iter(full)  # an ordered subsequence of the full curve
    assert all(any(p[0] == q[0] and p[1] == pytest.approx(q[1]) for q in points) for p in curve)
    values = [v for _, v in curve]
    assert max(values) == pytest.approx(max(v for _, v in full))
    assert min(values) == pytest.approx(min(v for _, v in full))
    whole = await collect_stats(config, [W], curves=True)
    assert [t for t, _ in whole.curves[W]] == [t for t, _ in full]


# -- legacy shared file: read read-only, never upgraded ---------------------------------------------------
def legacy_checksum(path: Path) -> tuple[object, ...]:
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)  # closed file: creates no -wal/-shm
    try:
        dump = hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()
    st = os.stat(path)
    return dump, version, st.st_size, st.st_mtime_ns


LEGACY_TRADES = [  # (trade_id, logic_type, pnl, close_time, status, own plugin_id in a seed-plan file)
    ("a", "LOGIC1", 5.0, "2024-02-01 10:00:00", "closed", None),
    ("b", "combinedlogic-1", -3.0, "2024-02-02T10:00:00", "closed", None),
    ("c", "LOGIC2", 7.0, "2024-02-03 10:00:00", "closed", None),
    ("d", None, 100.0, "2024-02-03 10:00:00", "closed", None),          # unmapped: the default id
    ("e", "logic1", 50.0, "2024-02-03 11:00:00", "closed", None),       # odd case: unmapped
    ("f", "LOGIC1", "oops", "2024-02-04 10:00:00", "closed", None),     # text pnl
    ("g", "LOGIC1", 9.0, None, "open", None),
    ("h", "LOGIC1", -8.0, epoch("2024-02-05 10:00:00"), "closed", None),
    ("i", "LOGIC1", 4.0, "2024-02-06 10:00:00", "closed", G2),          # own plugin_id wins (seed-plan file)
]


def build_small_legacy(path: Path, seed_plan: bool) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(LEGACY_SCHEMA)
    if seed_plan:
        conn.execute("ALTER TABLE trades ADD COLUMN plugin_id TEXT DEFAULT 'legacy'")
    for trade_id, logic, pnl, when, status, own in LEGACY_TRADES:
        conn.execute("INSERT INTO trades (trade_id, logic_type, pnl, close_time, status) VALUES (?, ?, ?, ?, ?)",
                     (trade_id, logic, pnl, when, status))
        if seed_plan and own:
            conn.execute("UPDATE trades SET plugin_id = ? WHERE trade_id = ?", (own, trade_id))
    conn.close()


def legacy_owner(logic: object, own: str | None, seed_plan: bool) -> str | None:
    if seed_plan and own:
        return own
    return {"LOGIC1": G1, "combinedlogic-1": G1, "LOGIC2": G2}.get(str(logic))


@pytest.mark.parametrize("seed_plan", [False, True], ids=["legacy", "seed-plan-migrated"])
def test_legacy_shared_file_is_read_read_only(project: Project, seed_plan: bool) -> None:
    build_small_legacy(project.shared_db, seed_plan)
    for plugin_id in (G1, G2, W):
        project.set_use_shared(plugin_id, True)
    before = legacy_checksum(project.shared_db)
    got = stats_json(project)
    # no backup, no new database, and no -wal/-shm left beside a WAL file that nobody had open
    assert {p.name for p in project.data.iterdir()} == {"trading_bot.db"}
    assert legacy_checksum(project.shared_db) == before
    assert query(project.shared_db, "PRAGMA user_version") == [(0,)]
    for plugin_id in (G1, G2, W):
        trades = [{"pnl": pnl, "close_time": when, "status": status} for _, logic, pnl, when, status, own
                  in LEGACY_TRADES if legacy_owner(logic, own, seed_plan) == plugin_id]
        assert_figures(got[plugin_id], expected(trades))
        assert got[plugin_id]["source"] == "legacy"
    assert got[G1]["total_trades"] == (4 if seed_plan else 5) and got[W]["total_trades"] == 0
    table = run_cli("stats", "--plugin", G1, config=project)
    assert "note: data/trading_bot.db is not migrated yet" in table.stdout


def test_realistic_legacy_file_with_wal_only_trades(project: Project) -> None:
    build_legacy_db(project.shared_db, trades=3000, seed=11)
    write_wal_only_trades(project.shared_db, 25)
    project.set_all_shared(True)
    before = legacy_checksum(project.shared_db)
    got = stats_json(project)
    assert legacy_checksum(project.shared_db) == before
    assert query(project.shared_db, "PRAGMA user_version") == [(0,)]
    mapping = load_config(project.configs).mapping
    for plugin_id in ALL:
        types = [k for k, v in mapping.items() if v == plugin_id]
        marks = ",".join("?" * len(types))
        # independent attribution for a file with no plugin_id column: mapping of logic_type, exact match
        want = query(project.shared_db,
                     f"SELECT count(*), total(CASE WHEN typeof(pnl) IN ('integer', 'real') THEN pnl END), "
                     f"count(CASE WHEN trade_id LIKE 'WAL-%' THEN 1 END) FROM trades "
                     f"WHERE status = 'closed' AND logic_type IN ({marks})", tuple(types))[0]
        assert (got[plugin_id]["total_trades"], got[plugin_id]["total_pnl"]) == (want[0], pytest.approx(want[1]))
        if plugin_id == G1:
            assert want[2] == 25  # the WAL-only trades are counted
    assert got[G1]["total_trades"] > 0 and got[G1]["max_drawdown"] > 0


def test_current_shared_file_is_read_without_a_change(project: Project) -> None:
    project.set_use_shared(W, True)
    seed(project, {W: HISTORY[W]})
    before = legacy_checksum(project.shared_db)[:2]
    got = stats_json(project, "--plugin", W)
    assert got[W]["source"] == "store"
    assert_figures(got[W], expected(HISTORY[W]))
    assert legacy_checksum(project.shared_db)[:2] == before


def test_legacy_figures_equal_the_figures_after_upgrade(project: Project) -> None:
    build_legacy_db(project.shared_db, trades=2000, seed=5)
    project.set_all_shared(True)
    legacy = stats_json(project, "--since", "2000-01-01")

    async def upgrade_through_the_library() -> None:
        async with Store.open(project.configs) as store:
            await store.for_plugin(G1).get_statistics()
    asyncio.run(upgrade_through_the_library())
    assert query(project.shared_db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    upgraded = stats_json(project, "--since", "2000-01-01")
    for plugin_id in ALL:
        assert legacy[plugin_id]["source"] == "legacy" and upgraded[plugin_id]["source"] == "store"
        want = {k: v for k, v in upgraded[plugin_id].items() if k not in ("source",)}
        assert_figures(legacy[plugin_id], want)
