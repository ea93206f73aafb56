"""The legacy database generator: schema, edge cases, realistic shape, reproducibility, WAL-only rows."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from zepix_store._sample.legacy import LEGACY_SCHEMA, MAPPING, build_legacy_db, write_wal_only_trades

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
SHARED_SCHEMA = Path(__file__).resolve().parents[1].parent / "shared" / "legacy_schema.sql"
TABLES = (
    "trades", "reentry_chains", "sl_events", "tp_reentry_events", "reversal_exit_events", "system_state",
    "profit_booking_chains", "profit_booking_orders", "profit_booking_events", "trading_sessions",
)
EDGE_TRADES = 37

Row = tuple[object, ...]


def q(path: Path, sql: str, params: Row = ()) -> list[Row]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def column(path: Path, sql: str, params: Row = ()) -> list[object]:
    return [r[0] for r in q(path, sql, params)]


def table_hash(path: Path, table: str) -> str:
    digest = hashlib.sha256()
    for row in q(path, f"SELECT * FROM {table} ORDER BY rowid"):
        digest.update(repr(tuple((type(v).__name__, repr(v)) for v in row)).encode())
    return digest.hexdigest()


def normalize(sql: str) -> str:
    return re.sub(r"\s+", " ", sql).replace("( ", "(").replace(" )", ")").strip().rstrip(";")


def schema_statements(text: str) -> list[str]:
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [normalize(s) for s in body.split(";") if s.strip()]


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("legacy") / "trading_bot.db"
    build_legacy_db(path, trades=3000, seed=7, now=NOW)
    return path


# --- schema ------------------------------------------------------------------------------------------------


def test_tables_are_the_legacy_schema_verbatim(legacy: Path) -> None:
    source = SHARED_SCHEMA.read_text() if SHARED_SCHEMA.exists() else LEGACY_SCHEMA
    expected = [s for s in schema_statements(source) if s.startswith("CREATE TABLE")]
    built = column(legacy, "SELECT sql FROM sqlite_master WHERE type = 'table' ORDER BY rowid")
    assert [normalize(str(s)) for s in built] == expected
    assert [s for s in schema_statements(LEGACY_SCHEMA) if s.startswith("CREATE TABLE")] == expected


def test_columns_match_a_database_made_from_the_schema(legacy: Path) -> None:
    ref = sqlite3.connect(":memory:")
    ref.executescript(LEGACY_SCHEMA)
    for table in TABLES:
        assert q(legacy, f"PRAGMA table_info({table})") == ref.execute(f"PRAGMA table_info({table})").fetchall()
    ref.close()


def test_legacy_indexes_on_trades(legacy: Path) -> None:
    names = column(legacy, "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name")
    columns = {n: tuple(column(legacy, "SELECT name FROM pragma_index_info(?) ORDER BY seqno", (n,))) for n in names}
    assert columns == {
        "idx_trades_chain_id": ("chain_id",), "idx_trades_close_time": ("close_time",),
        "idx_trades_logic_status": ("logic_type", "status"), "idx_trades_logic_type": ("logic_type",),
        "idx_trades_session_id": ("session_id",), "idx_trades_status": ("status",),
        "idx_trades_status_close": ("status", "close_time"), "idx_trades_symbol": ("symbol",),
    }
    owners = column(legacy, "SELECT DISTINCT tbl_name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
    assert owners == ["trades"]


def test_mapping_is_the_spec_mapping() -> None:
    assert MAPPING == {
        "combinedlogic-1": "v3-logic-01-5min", "combinedlogic-2": "v3-logic-02-15min",
        "combinedlogic-3": "v3-logic-03-1h", "LOGIC1": "v3-logic-01-5min", "LOGIC2": "v3-logic-02-15min",
        "LOGIC3": "v3-logic-03-1h",
    }


def test_file_is_private_wal_and_clean(legacy: Path) -> None:
    assert legacy.stat().st_mode & 0o777 == 0o600
    assert q(legacy, "PRAGMA journal_mode") == [("wal",)]
    assert q(legacy, "PRAGMA integrity_check") == [("ok",)]
    assert not Path(f"{legacy}-wal").exists() or Path(f"{legacy}-wal").stat().st_size == 0


# --- edge cases --------------------------------------------------------------------------------------------


def test_every_logic_type_case_is_present(legacy: Path) -> None:
    values = set(column(legacy, "SELECT DISTINCT logic_type FROM trades"))
    odd = {None, "", "logic1", " LOGIC1", "LOGIC1 ", "COMBINEDLOGIC-1", "combinedlogic-9"}
    assert set(MAPPING) | odd <= values


def test_duplicate_trade_ids(legacy: Path) -> None:
    assert q(legacy, "SELECT logic_type, count(*) FROM trades WHERE trade_id = 'E-DUP-1' GROUP BY 1") == [("LOGIC2", 2)]
    logic = column(legacy, "SELECT logic_type FROM trades WHERE trade_id = 'E-XPLUG-1'")
    assert len({MAPPING[str(v)] for v in logic}) == 2
    for table in ("sl_events", "reversal_exit_events"):
        assert column(legacy, f"SELECT count(*) FROM {table} WHERE trade_id = 'E-XPLUG-1'") == [1]
    assert column(legacy, "SELECT count(*) FROM trades WHERE trade_id IS NULL") == [2]


@pytest.mark.parametrize(
    ("link", "value", "parent", "key"),
    [("chain_id", "RC-SHARED", "reentry_chains", "chain_id"),
     ("profit_chain_id", "PB-SHARED", "profit_booking_chains", "chain_id"),
     ("session_id", "SES-SHARED", "trading_sessions", "session_id")],
)
def test_shared_lineage(legacy: Path, link: str, value: str, parent: str, key: str) -> None:
    logic = column(legacy, f"SELECT logic_type FROM trades WHERE {link} = ?", (value,))
    assert len({MAPPING[str(v)] for v in logic}) == 2
    assert column(legacy, f"SELECT count(*) FROM {parent} WHERE {key} = ?", (value,)) == [1]


def test_children_of_shared_parents(legacy: Path) -> None:
    assert column(legacy, "SELECT count(*) FROM tp_reentry_events WHERE chain_id = 'RC-SHARED'") == [2]
    assert column(legacy, "SELECT count(*) FROM profit_booking_orders WHERE chain_id = 'PB-SHARED'") == [2]
    assert column(legacy, "SELECT count(*) FROM profit_booking_events WHERE chain_id = 'PB-SHARED'") == [2]


ORPHANS = {
    "reentry_chains": ("SELECT chain_id FROM reentry_chains WHERE chain_id NOT IN "
                       "(SELECT chain_id FROM trades WHERE chain_id IS NOT NULL)", ["RC-ORPHAN"]),
    "profit_booking_chains": ("SELECT chain_id FROM profit_booking_chains WHERE chain_id NOT IN "
                              "(SELECT profit_chain_id FROM trades WHERE profit_chain_id IS NOT NULL)", ["PB-ORPHAN"]),
    "trading_sessions": ("SELECT session_id FROM trading_sessions WHERE session_id NOT IN "
                         "(SELECT session_id FROM trades WHERE session_id IS NOT NULL)", ["SES-ORPHAN"]),
    "sl_events": ("SELECT trade_id FROM sl_events WHERE trade_id IS NULL OR trade_id NOT IN "
                  "(SELECT trade_id FROM trades WHERE trade_id IS NOT NULL)", ["E-GONE-SL", None]),
    "reversal_exit_events": ("SELECT trade_id FROM reversal_exit_events WHERE trade_id NOT IN "
                             "(SELECT trade_id FROM trades WHERE trade_id IS NOT NULL)", ["E-GONE-REV"]),
    "tp_reentry_events": ("SELECT chain_id FROM tp_reentry_events WHERE chain_id NOT IN "
                          "(SELECT chain_id FROM reentry_chains)", ["RC-GONE"]),
    "profit_booking_orders": ("SELECT order_id FROM profit_booking_orders WHERE chain_id IS NULL OR chain_id NOT IN "
                              "(SELECT chain_id FROM profit_booking_chains)", ["PBO-GONE-1", "PBO-NULL-1"]),
    "profit_booking_events": ("SELECT chain_id FROM profit_booking_events WHERE chain_id NOT IN "
                              "(SELECT chain_id FROM profit_booking_chains)", ["PB-GONE"]),
}


@pytest.mark.parametrize("table", sorted(ORPHANS))
def test_orphans_are_exactly_the_planted_ones(legacy: Path, table: str) -> None:
    sql, expected = ORPHANS[table]
    assert column(legacy, sql + " ORDER BY rowid") == expected


def test_orphan_parents_still_have_children(legacy: Path) -> None:
    assert column(legacy, "SELECT count(*) FROM tp_reentry_events WHERE chain_id = 'RC-ORPHAN'") == [1]
    assert column(legacy, "SELECT count(*) FROM profit_booking_orders WHERE chain_id = 'PB-ORPHAN'") == [1]


def test_foreign_key_check_reports_only_the_planted_order(legacy: Path) -> None:
    rowid = column(legacy, "SELECT rowid FROM profit_booking_orders WHERE order_id = 'PBO-GONE-1'")[0]
    assert q(legacy, "PRAGMA foreign_key_check") == [("profit_booking_orders", rowid, "profit_booking_chains", 0)]


def test_mixed_timestamp_formats(legacy: Path) -> None:
    def count(where: str) -> int:
        return int(str(column(legacy, f"SELECT count(*) FROM trades WHERE {where}")[0]))

    assert count("typeof(open_time) = 'integer' AND typeof(close_time) = 'integer'") == 1
    assert count("close_time GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]'") > 100
    assert count("close_time GLOB '????-??-??T??:??:??'") >= 3
    assert count("close_time GLOB '????-??-?? ??:??:??.*'") >= 1
    assert count("close_time GLOB '????-??-??T??:??:??.*'") >= 2


def test_mixed_storage_classes(legacy: Path) -> None:
    def one(sql: str) -> Row:
        return q(legacy, sql)[0]

    assert one("SELECT trade_id, typeof(trade_id) FROM trades WHERE trade_id = '4242'") == ("4242", "text")
    assert one("SELECT typeof(comment) FROM trades WHERE trade_id = 'E-BLOB-COMMENT'") == ("blob",)
    assert one("SELECT pnl, typeof(pnl) FROM trades WHERE trade_id = 'E-PNL-NA'") == ("n/a", "text")
    assert one("SELECT pnl, typeof(pnl) FROM trades WHERE trade_id = 'E-NEG-ZERO'") == (0.0, "real")
    assert one("SELECT tp_price FROM trades WHERE trade_id = 'E-BIG-REAL'") == (1e308,)
    pnl = one("SELECT pnl FROM trades WHERE trade_id = 'E-17-DIGITS'")[0]
    assert pnl == 0.1 + 0.2 and len(repr(pnl).replace("0.", "", 1)) == 17
    kinds = set(q(legacy, "SELECT is_re_entry, typeof(is_re_entry) FROM trades WHERE id <= 40"))
    assert {(1, "integer"), ("true", "text"), (None, "null")} <= kinds


def test_recent_trades_relative_to_now(legacy: Path) -> None:
    def closed(trade_id: str) -> datetime:
        value = str(column(legacy, "SELECT close_time FROM trades WHERE trade_id = ?", (trade_id,))[0])
        return datetime.fromisoformat(value).replace(tzinfo=UTC)

    window = NOW - timedelta(days=30)
    for trade_id in ("E-RECENT-SP", "E-RECENT-ISO", "E-RECENT-ISO-FRAC", "E-RECENT-29D23H"):
        assert window < closed(trade_id) < NOW
    assert NOW - closed("E-RECENT-29D23H") == timedelta(days=29, hours=23)
    assert closed("E-RECENT-OUT-ISO") < window
    rows = column(legacy, "SELECT close_time FROM trades WHERE trade_id LIKE 'E-RECENT-%'")
    assert any("T" in str(v) for v in rows) and any(" " in str(v) for v in rows)


def test_default_now_keeps_the_boundary_trade_inside_30_days(tmp_path: Path) -> None:
    path = tmp_path / "now.db"
    build_legacy_db(path, trades=10)
    value = column(path, "SELECT close_time FROM trades WHERE trade_id = 'E-RECENT-29D23H'")[0]
    age = datetime.now(UTC) - datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
    assert timedelta(days=29, hours=22) <= age < timedelta(days=29, hours=23, minutes=1)


def test_a_tiny_build_still_has_every_edge_case(tmp_path: Path) -> None:
    summary = build_legacy_db(tmp_path / "tiny.db", trades=1, now=NOW)
    assert summary.trades == EDGE_TRADES
    assert summary.rows == {
        "trades": EDGE_TRADES, "reentry_chains": 2, "sl_events": 5, "tp_reentry_events": 4, "reversal_exit_events": 3,
        "system_state": 5, "profit_booking_chains": 2, "profit_booking_orders": 5, "profit_booking_events": 4,
        "trading_sessions": 2,
    }


# --- realistic shape ---------------------------------------------------------------------------------------


def fraction(path: Path, where: str) -> float:
    n, total = q(path, f"SELECT count(*) FILTER (WHERE {where}), count(*) FROM trades WHERE id > {EDGE_TRADES}")[0]
    return int(str(n)) / int(str(total))


def test_trade_shape(legacy: Path) -> None:
    assert 0.86 < fraction(legacy, "status = 'closed'") < 0.94
    assert 0.32 < fraction(legacy, "chain_id IS NOT NULL") < 0.48
    assert 0.14 < fraction(legacy, "profit_chain_id IS NOT NULL") < 0.26
    assert 0.5 < fraction(legacy, "pnl > 0 AND status = 'closed'") / fraction(legacy, "status = 'closed'") < 0.75
    assert set(column(legacy, "SELECT DISTINCT direction FROM trades")) == {"buy", "sell"}
    assert {"EURUSD", "GBPUSD", "XAUUSD", "USDJPY"} <= set(column(legacy, "SELECT DISTINCT symbol FROM trades"))
    first, last = q(legacy, f"SELECT min(open_time), max(close_time) FROM trades WHERE id > {EDGE_TRADES}")[0]
    assert datetime.fromisoformat(str(first)).replace(tzinfo=UTC) >= NOW - timedelta(days=731)
    assert datetime.fromisoformat(str(last)).replace(tzinfo=UTC) <= NOW - timedelta(days=1)
    assert NOW - datetime.fromisoformat(str(first)).replace(tzinfo=UTC) > timedelta(days=700)


def test_child_shape(legacy: Path) -> None:
    def per_parent(what: str, table: str, key: str, prefix: str) -> set[object]:
        return set(column(legacy, f"SELECT {what} FROM {table} WHERE {key} LIKE '{prefix}-0%' GROUP BY {key}"))

    assert per_parent("count(*)", "trades", "chain_id", "RC") == {1, 2, 3, 4, 5}
    assert per_parent("max(chain_level) = count(*)", "trades", "chain_id", "RC") == {1}
    assert per_parent("count(*)", "trades", "profit_chain_id", "PB") == {1, 2, 3}
    assert per_parent("count(*)", "tp_reentry_events", "chain_id", "RC") == {1, 2, 3}
    assert per_parent("count(*)", "profit_booking_orders", "chain_id", "PB") == {2, 3, 4}
    assert per_parent("count(*)", "profit_booking_events", "chain_id", "PB") == {1, 2, 3}
    sizes = column(legacy, "SELECT count(*) FROM trades WHERE session_id LIKE 'SES-0%' GROUP BY session_id")
    assert 9 < sum(int(str(s)) for s in sizes) / len(sizes) < 11
    assert 0.22 < int(str(column(legacy, "SELECT count(*) FROM sl_events")[0])) / 3000 < 0.38
    assert 0.05 < int(str(column(legacy, "SELECT count(*) FROM reversal_exit_events")[0])) / 3000 < 0.15
    assert len(column(legacy, "SELECT key FROM system_state")) >= 3


def test_session_and_chain_totals_match_their_trades(legacy: Path) -> None:
    mismatched = q(legacy, """SELECT s.session_id FROM trading_sessions s JOIN trades t ON t.session_id = s.session_id
        WHERE s.session_id LIKE 'SES-0%' GROUP BY s.session_id
        HAVING abs(s.total_pnl - total(t.pnl)) > 0.005 OR s.total_trades <> count(*)""")
    assert mismatched == []
    mismatched = q(legacy, """SELECT c.chain_id FROM reentry_chains c JOIN trades t ON t.chain_id = c.chain_id
        WHERE c.chain_id LIKE 'RC-0%' GROUP BY c.chain_id
        HAVING abs(c.total_profit - total(t.pnl)) > 0.005 OR c.max_level_reached <> count(*)""")
    assert mismatched == []


# --- reproducibility, files, options ------------------------------------------------------------------------


def test_same_seed_same_content(tmp_path: Path) -> None:
    builds = [build_legacy_db(tmp_path / f"{name}.db", trades=600, seed=seed, now=NOW)
              for name, seed in (("a", 3), ("b", 3), ("c", 4))]
    a, b, c = ({t: table_hash(s.path, t) for t in TABLES} for s in builds)
    assert a == b
    assert a["trades"] != c["trades"] and a["system_state"] == c["system_state"]


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "existing.db"
    path.write_bytes(b"keep me")
    with pytest.raises(FileExistsError):
        build_legacy_db(path, trades=10, now=NOW)
    assert path.read_bytes() == b"keep me"


def test_a_failed_build_leaves_no_file(tmp_path: Path) -> None:
    def explode(line: str) -> None:
        if line.startswith("sl_events"):
            raise KeyboardInterrupt

    path = tmp_path / "partial.db"
    with pytest.raises(KeyboardInterrupt):
        build_legacy_db(path, trades=100, now=NOW, progress=explode)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_progress_and_summary(tmp_path: Path) -> None:
    lines: list[str] = []
    summary = build_legacy_db(tmp_path / "p.db", trades=500, seed=9, now=NOW, progress=lines.append)
    assert [line.split(":")[0] for line in lines] == list(TABLES)
    assert summary.rows == {t: column(summary.path, f"SELECT count(*) FROM {t}")[0] for t in TABLES}
    assert (summary.trades, summary.seed, summary.path) == (500, 9, tmp_path / "p.db")
    assert [f"{t}: {summary.rows[t]} rows" for t in TABLES] == lines


def test_omit_tables(tmp_path: Path) -> None:
    summary = build_legacy_db(tmp_path / "o.db", trades=200, now=NOW, omit_tables={"trading_sessions", "trades"})
    present = set(column(summary.path, "SELECT name FROM sqlite_master WHERE type = 'table'"))
    assert present == set(TABLES) - {"trading_sessions", "trades"} == set(summary.rows)
    assert column(summary.path, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL") == [0]
    assert summary.trades == 0 and summary.rows["sl_events"] > 5


def test_omit_columns(tmp_path: Path) -> None:
    omit = {"trades": ["logic_type", "base_lot_size"], "sl_events": ["recovery_successful"]}
    summary = build_legacy_db(tmp_path / "old.db", trades=200, now=NOW, omit_columns=omit)
    for table, gone in omit.items():
        names = set(column(summary.path, f"SELECT name FROM pragma_table_info('{table}')"))
        assert names.isdisjoint(gone) and len(names) > 3
    indexes = set(column(summary.path, "SELECT name FROM sqlite_master WHERE type = 'index'"))
    assert "idx_trades_logic_type" not in indexes and "idx_trades_logic_status" not in indexes
    assert {"idx_trades_symbol", "idx_trades_status_close"} <= indexes
    assert summary.rows["trades"] == 200


@pytest.mark.parametrize(
    ("tables", "columns"),
    [({"nope"}, {}), ((), {"trades": ["nope"]}), ((), {"trades": ["id"]}),
     ((), {"profit_booking_orders": ["chain_id"]})],
)
def test_bad_omissions_are_refused_before_any_file(
    tmp_path: Path, tables: set[str], columns: dict[str, list[str]]
) -> None:
    with pytest.raises(ValueError):
        build_legacy_db(tmp_path / "x.db", trades=10, omit_tables=tables, omit_columns=columns)
    assert not (tmp_path / "x.db").exists()


def test_seed_plan_migrated_state(tmp_path: Path) -> None:
    path = build_legacy_db(tmp_path / "seeded.db", trades=300, now=NOW, seed_plan_migrated=True).path
    for table in TABLES:
        info = {r[1]: r[4] for r in q(path, f"PRAGMA table_info({table})")}
        expected = {"plugin_id": '"legacy"'} if table in {"trades", "reentry_chains", "profit_booking_chains",
                                                          "trading_sessions"} else {}
        assert {k: v for k, v in info.items() if k == "plugin_id"} == expected
    owners = set(q(path, "SELECT logic_type, plugin_id FROM trades"))
    assert all(plugin == MAPPING.get(str(logic), "legacy") for logic, plugin in owners)
    assert ("logic1", "legacy") in owners and (None, "legacy") in owners
    assert set(column(path, "SELECT DISTINCT plugin_id FROM reentry_chains")) == {"legacy"}


# --- WAL-only rows -----------------------------------------------------------------------------------------


def copy_main_file_only(src: Path, dst: Path) -> None:
    code = "import shutil, sys; shutil.copyfile(sys.argv[1], sys.argv[2])"
    subprocess.run([sys.executable, "-c", code, str(src), str(dst)], check=True, timeout=60)


def wal_rows(path: Path) -> list[Row]:
    return q(path, "SELECT count(*), count(DISTINCT trade_id) FROM trades "
                   "WHERE trade_id LIKE 'WAL-%' AND logic_type = 'LOGIC1'")


def test_write_wal_only_trades(tmp_path: Path) -> None:
    (tmp_path / "live").mkdir()
    path = build_legacy_db(tmp_path / "live" / "bot.db", trades=200, now=NOW).path
    write_wal_only_trades(path, 40)
    write_wal_only_trades(path, 10, seed=2)
    assert Path(f"{path}-wal").stat().st_size > 0
    copy = tmp_path / "copy.db"
    copy_main_file_only(path, copy)
    assert wal_rows(copy) == [(0, 0)]
    assert wal_rows(path) == [(50, 50)]


def test_write_wal_only_trades_needs_an_existing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_wal_only_trades(tmp_path / "missing.db", 5)
    assert list(tmp_path.iterdir()) == []
