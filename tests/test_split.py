"""split: attribution per SPEC 5, exact copies, an untouched shared file, reruns, remap, crashes, dry run, CLI.

Expectations are computed here in Python from the mapping and the lineage rules (not by attribution.py), and
every split runs as a real subprocess.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import REPO, Project
from tests.helpers import (
    FAULT_POINTS,
    GROUP_FILE,
    N_KILLS,
    _killed_split,
    _rerun_equals,
    _state,
    build_template,
    connect_ro,
    content,
    expected_owners,
    isolated_files,
    legacy_rows,
    logical_checksums,
    plugin_rows,
    set_mapping,
    shipped_mapping,
    typed,
)
from tests.helpers import (
    split_byte_digest as byte_digest,
)
from tests.helpers import (
    split_install as install,
)
from tests.helpers import (
    split_listing as listing,
)
from tests.helpers import (
    split_ORDER as ORDER,
)
from tests.helpers import (
    split_run_cli as run_cli,
)
from tests.helpers import (
    split_table_columns as table_columns,
)
from tests.helpers import (
    split_V3 as V3,
)
from zepix_store.legacy_data import build_legacy_db, write_wal_only_trades

# --- helpers shared with test_merge.py and test_verify.py ------------------------------------------------






































@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template(tmp_path_factory)




@pytest.fixture
def legacy(template: Path, project: Project) -> Project:
    install(template, project)
    return project


# --- attribution and exact copies ------------------------------------------------------------------------


def test_every_isolated_file_holds_exactly_the_rows_spec5_gives_its_plugins(legacy: Project) -> None:
    mapping = {**shipped_mapping(legacy), "LOGIC3": "v6-logic-01-1min"}  # a plugin in a file of its own too
    set_mapping(legacy, mapping)
    owners = expected_owners(legacy.shared_db, mapping)
    done = run_cli("split", legacy, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    conn = connect_ro(legacy.shared_db)
    try:
        for table in ORDER:
            cols, src = table_columns(conn, table), legacy_rows(conn, table)
            for plugin in (*V3, "v6-logic-01-1min", "v6-logic-02-5min"):
                expected = sorted(content(src[r], table, cols) for r, o in owners[table].items() if plugin in o)
                assert plugin_rows(legacy.isolated_db(plugin), table, plugin, cols) == expected, (table, plugin)
                assert report["plugins"][plugin]["tables"][table]["copied"] == len(expected)
            buckets = report["buckets"][table]
            assert buckets["bucket_total"] == buckets["source_rows"] == len(src)
            assert buckets["shared_rows"] == sum(len(o) > 1 for o in owners[table].values())
    finally:
        conn.close()
    shared_chain = [r for r in plugin_rows(legacy.isolated_db(V3[0]), "reentry_chains", V3[1],
                                           ["chain_id"])]
    assert (("str", "'RC-SHARED'"),) in shared_chain  # shared lineage: once per plugin, each under its own id
    assert ("'RC-SHARED'" in repr(plugin_rows(legacy.isolated_db(V3[0]), "reentry_chains", V3[0], ["chain_id"])))


def test_copies_keep_ids_storage_classes_and_exact_values(legacy: Project) -> None:
    assert run_cli("split", legacy).returncode == 0
    src, dst = connect_ro(legacy.shared_db), connect_ro(legacy.isolated_db(V3[0]))
    try:
        cols = table_columns(src, "trades")
        source = {r[0]: r for r in src.execute("SELECT * FROM trades")}
        copies = dst.execute(f"SELECT {', '.join(cols)} FROM trades WHERE plugin_id IN (?, ?, ?)", V3[:3]).fetchall()
        # single-owner trades keep their id, so each copy is compared with its source row value by value
        assert copies and all(tuple(map(typed, row)) == tuple(map(typed, source[row[0]])) for row in copies)
        specials = dict(dst.execute("SELECT trade_id, typeof(pnl) || ':' || quote(pnl) FROM trades "
                                    "WHERE trade_id IN ('E-PNL-NA', 'E-17-DIGITS', 'E-NEG-ZERO')"))
        assert specials == {"E-PNL-NA": "text:'n/a'", "E-17-DIGITS": "real:3.00000000000000044408e-01",
                            "E-NEG-ZERO": "real:0.0"}
        blob = dst.execute("SELECT typeof(comment), comment FROM trades WHERE trade_id = 'E-BLOB-COMMENT'").fetchone()
        assert blob == ("blob", b"\x00\xffMT5\x01")
        big = dst.execute("SELECT typeof(tp_price), tp_price FROM trades WHERE trade_id = 'E-BIG-REAL'").fetchone()
        assert big == ("real", 1e308)
        assert dst.execute("SELECT typeof(trade_id), trade_id FROM trades WHERE trade_id = '4242'").fetchone() == \
            ("text", "4242")
    finally:
        src.close()
        dst.close()


def test_older_legacy_files_copy_what_exists_and_report_the_rest(project: Project) -> None:
    build_legacy_db(project.shared_db, trades=200, omit_tables=("trading_sessions", "profit_booking_events"),
                    omit_columns={"trades": ("profit_level", "base_sl_pips")})
    done = run_cli("split", project, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert sorted(report["absent_tables"]) == ["profit_booking_events", "trading_sessions"]
    assert report["absent_columns"] == {"trades": ["profit_level", "base_sl_pips"]}
    copies = connect_ro(project.isolated_db(V3[0]))
    try:  # absent columns take the store's default, absent tables exist empty
        assert copies.execute("SELECT DISTINCT profit_level, base_sl_pips FROM trades").fetchall() == [(0, 0.0)]
        assert copies.execute("SELECT count(*) FROM trading_sessions").fetchone() == (0,)
    finally:
        copies.close()


def test_seed_plan_migrated_source_keeps_each_rows_own_plugin_id(project: Project) -> None:
    build_legacy_db(project.shared_db, trades=200, seed_plan_migrated=True)
    mapping = shipped_mapping(project)
    owners = expected_owners(project.shared_db, mapping)
    assert run_cli("split", project).returncode == 0
    conn = connect_ro(project.shared_db)
    try:
        cols = [c for c in table_columns(conn, "trades") if c != "plugin_id"]
        src = legacy_rows(conn, "trades")
    finally:
        conn.close()
    expected = sorted(content(src[r], "trades", cols) for r, o in owners["trades"].items() if V3[2] in o)
    assert plugin_rows(project.isolated_db(V3[2]), "trades", V3[2], cols) == expected


# --- the shared file is only read ------------------------------------------------------------------------


def test_shared_file_is_unchanged_byte_for_byte_and_never_upgraded(legacy: Project) -> None:
    before = byte_digest(legacy.shared_db)
    watcher = sqlite3.connect(legacy.shared_db)
    try:
        version = watcher.execute("PRAGMA data_version").fetchone()[0]
        schema = watcher.execute("SELECT * FROM sqlite_master ORDER BY name").fetchall()
        done = run_cli("split", legacy)
        assert done.returncode == 0, done.stderr
        assert watcher.execute("PRAGMA data_version").fetchone()[0] == version  # nobody committed
        assert watcher.execute("SELECT * FROM sqlite_master ORDER BY name").fetchall() == schema
        assert watcher.execute("PRAGMA user_version").fetchone() == (0,)
        assert "plugin_id" not in table_columns(watcher, "trades")
    finally:
        watcher.close()
    assert byte_digest(legacy.shared_db) == before


def test_readers_leave_no_wal_or_shm_beside_a_file_nobody_had_open(legacy: Project) -> None:
    """A -wal/-shm left by a read would belong to whoever ran the command: a root-run split could lock the bot out."""
    conn = sqlite3.connect(legacy.shared_db)
    assert conn.execute("PRAGMA journal_mode = WAL").fetchone() == ("wal",)
    conn.close()
    for command, *args in (("split", "--dry-run"), ("split",), ("verify",), ("split",), ("stats",)):
        done = run_cli(command, legacy, *args)
        assert done.returncode == 0, f"{command} {args}: {done.stderr}"
        left = sorted(p.name for p in legacy.data.rglob("*") if p.name.endswith(("-wal", "-shm")))
        assert left == [], f"after {command} {' '.join(args)}"


def test_a_bot_starting_during_a_split_can_write_the_shared_file(legacy: Project,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The source is attached read-only, so the split's write transaction on its target never locks it."""
    from zepix_store import fault, split
    from zepix_store.config import load_config

    conn = sqlite3.connect(legacy.shared_db)
    assert conn.execute("PRAGMA journal_mode = WAL").fetchone() == ("wal",)
    conn.close()
    assert not Path(f"{legacy.shared_db}-wal").exists()  # nobody has it open when the split starts
    outcome: list[str] = []
    real_point = fault.point

    def bot_writes_once(name: str) -> None:
        if name.startswith("after_copy:") and not outcome:
            bot = sqlite3.connect(legacy.shared_db, timeout=1.0, isolation_level=None)
            try:
                bot.execute("INSERT INTO trades (trade_id, logic_type) VALUES ('BOT-1', 'LOGIC1')")
                outcome.append("written")
            except sqlite3.OperationalError as exc:
                outcome.append(str(exc))
            finally:
                bot.close()
        real_point(name)

    monkeypatch.setattr(fault, "point", bot_writes_once)
    report = split.split(load_config(legacy.configs))
    assert outcome == ["written"] and report.ok, report.problems
    conn = sqlite3.connect(f"file:{legacy.shared_db}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT count(*) FROM trades WHERE trade_id = 'BOT-1'").fetchone() == (1,)
    finally:
        conn.close()


def test_a_file_attached_to_read_refuses_every_write(legacy: Project) -> None:
    from zepix_store.ops.sync.shared import open_shared

    before = byte_digest(legacy.shared_db)
    conn = open_shared(legacy.shared_db)
    try:
        for sql in ("DELETE FROM sh.trades", "UPDATE sh.trades SET pnl = 0", "INSERT INTO sh.trades DEFAULT VALUES",
                    "CREATE TABLE sh.x (a)", "CREATE INDEX sh.i ON trades (pnl)", "DROP TABLE sh.trades",
                    "ALTER TABLE sh.trades ADD COLUMN y", "PRAGMA sh.journal_mode = DELETE",
                    "PRAGMA sh.user_version = 9", "ANALYZE sh", "PRAGMA wal_checkpoint", "PRAGMA optimize"):
            with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
                conn.execute(sql)
        conn.execute("CREATE TEMP TABLE counted AS SELECT count(*) AS n FROM sh.trades")  # temp tables stay free
        assert conn.execute("SELECT n FROM counted").fetchone()[0] > 0
    finally:
        conn.close()
    assert byte_digest(legacy.shared_db) == before


def test_rows_committed_only_to_the_wal_are_split(legacy: Project) -> None:
    write_wal_only_trades(legacy.shared_db, 40)
    before = byte_digest(legacy.shared_db)
    assert Path(f"{legacy.shared_db}-wal").stat().st_size > 0
    done = run_cli("split", legacy)
    assert done.returncode == 0, done.stderr
    conn = connect_ro(legacy.isolated_db(V3[0]))
    try:
        assert conn.execute("SELECT count(*) FROM trades WHERE trade_id LIKE 'WAL-%' AND plugin_id = ?",
                            (V3[0],)).fetchone() == (40,)
    finally:
        conn.close()
    assert byte_digest(legacy.shared_db) == before


# --- reruns, bot rows, collisions, mapping changes ---------------------------------------------------------


async def _bot_writes(project: Project, plugin: str, trade_ids: Iterable[str], chain: str | None = None) -> None:
    from zepix_store import Store

    async with Store.open(project.configs) as store:
        db = store.for_plugin(plugin)
        for tid in trade_ids:
            await db.save_trade({"trade_id": tid, "symbol": "EURUSD", "pnl": 1.5, "status": "closed"})
        if chain is not None:
            await db.save_reentry_chain({"chain_id": chain, "symbol": "EURUSD", "status": "active"})


def test_rerun_copies_nothing_twice_and_bot_rows_survive(legacy: Project) -> None:
    asyncio.run(_bot_writes(legacy, V3[0], ["BOT-BEFORE-1", "BOT-BEFORE-2"]))  # the bot used the file first
    first = run_cli("split", legacy, "--json")
    assert first.returncode == 0, first.stderr
    asyncio.run(_bot_writes(legacy, V3[0], ["BOT-AFTER-1"], chain="BOT-CHAIN"))
    files = isolated_files(legacy)
    after_bot = logical_checksums(files)
    again = run_cli("split", legacy, "--json")
    assert again.returncode == 0, again.stderr
    doc = json.loads(again.stdout)
    assert doc["rows_copied"] == 0 and set(doc["files"].values()) == {"up to date"}
    assert logical_checksums(files) == after_bot
    conn = connect_ro(legacy.isolated_db(V3[0]))
    try:
        bot = conn.execute("SELECT trade_id FROM trades WHERE trade_id LIKE 'BOT-%' ORDER BY 1").fetchall()
        assert bot == [("BOT-AFTER-1",), ("BOT-BEFORE-1",), ("BOT-BEFORE-2",)]
        # the legacy trades that wanted ids 1 and 2 got fresh ones; all of them are there exactly once
        assert conn.execute("SELECT count(*), count(DISTINCT id) FROM trades WHERE plugin_id = ?",
                            (V3[0],)).fetchone()[0] == json.loads(first.stdout)["plugins"][V3[0]]["tables"][
            "trades"]["copied"] + 3
        assert conn.execute("SELECT count(*) FROM zx_sync_pairs l JOIN zx_sync_segments g USING (seg) "
                            "JOIN trades t ON t.id = l.iso_rowid AND g.table_name = 'trades' "
                            "AND g.plugin_id = t.plugin_id WHERE t.trade_id LIKE 'BOT-%'").fetchone() == (0,)
    finally:
        conn.close()


def test_natural_key_collision_refuses_that_plugin_only(legacy: Project) -> None:
    asyncio.run(_bot_writes(legacy, V3[0], [], chain="RC-SHARED"))  # the legacy data gives RC-SHARED to V3[0]
    done = run_cli("split", legacy, "--json")
    assert done.returncode == 1
    assert "reentry_chains" in done.stderr and "RC-SHARED" in done.stderr and V3[0] in done.stderr
    report = json.loads(done.stdout)
    assert report["plugins"][V3[0]]["status"] == "refused"
    assert report["plugins"][V3[1]]["status"] == "copied"
    conn = connect_ro(legacy.isolated_db(V3[0]))
    try:
        assert conn.execute("SELECT count(*) FROM trades WHERE plugin_id = ?", (V3[0],)).fetchone() == (0,)
        assert conn.execute("SELECT symbol, status FROM reentry_chains WHERE plugin_id = ?",
                            (V3[0],)).fetchall() == [("EURUSD", "active")]  # the bot's row, untouched
        assert conn.execute("SELECT count(*) FROM trades WHERE plugin_id = ?", (V3[1],)).fetchone()[0] > 0
    finally:
        conn.close()


def test_changed_mapping_is_refused_until_remap(legacy: Project) -> None:
    assert run_cli("split", legacy).returncode == 0
    files = isolated_files(legacy)
    before = logical_checksums(files)
    set_mapping(legacy, {**shipped_mapping(legacy), "logic1": V3[0], "LOGIC3": V3[1]})
    refused = run_cli("split", legacy, "-q")  # -q: no progress line before it, however slow the machine
    assert refused.returncode == 2
    assert "--remap" in refused.stderr and refused.stderr.count("\n") == 1
    assert logical_checksums(files) == before
    done = run_cli("split", legacy, "--remap", "--json")
    assert done.returncode == 0, done.stderr
    owners = expected_owners(legacy.shared_db, {**shipped_mapping(legacy)})
    conn = connect_ro(legacy.shared_db)
    try:
        cols, src = table_columns(conn, "trades"), legacy_rows(conn, "trades")
    finally:
        conn.close()
    for plugin in V3[:3]:
        expected = sorted(content(src[r], "trades", cols) for r, o in owners["trades"].items() if plugin in o)
        assert plugin_rows(legacy.isolated_db(plugin), "trades", plugin, cols) == expected
    assert run_cli("split", legacy).returncode == 0


# --- crash safety ------------------------------------------------------------------------------------------










@pytest.mark.slow
def test_killed_anywhere_then_rerun_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    template = tmp_path / "legacy.db"
    build_legacy_db(template, trades=120, seed=5)
    clean = Project(tmp_path / "clean")
    install(template, clean)
    proc = subprocess.Popen([sys.executable, "-m", "zepix_store.split", "--config", str(clean.configs), "--prune"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    proc.stderr.readline()
    started = time.monotonic()
    proc.communicate(timeout=120)
    assert proc.returncode == 0
    duration = time.monotonic() - started  # from the first progress line to the end
    reference = _state(clean)
    trials = [("fault", p) for p in FAULT_POINTS] + [("random", f"kill-{k}") for k in range(N_KILLS)]
    # The kills, a few at once (each its own project, mostly waiting on its process); the checks and reruns then
    # one after the other in this process (no interpreter start-up each).
    with ThreadPoolExecutor(max_workers=4) as pool:
        killed = list(pool.map(lambda n: _killed_split(template, tmp_path / f"t{n}", *trials[n], duration),
                               range(len(trials))))
    for project, (kind, what) in zip(killed, trials):
        _rerun_equals(project, reference, kind, what)


# --- dry run, reports, command line ------------------------------------------------------------------------


def test_dry_run_creates_nothing_not_even_a_folder(legacy: Project) -> None:
    doc = json.loads((legacy.plugin_config_path("v6-logic-04-1h")).read_text())
    doc["database"]["isolated_db"] = "data/plugins/v6_04.db"
    legacy.plugin_config_path("v6-logic-04-1h").write_text(json.dumps(doc))
    before = listing(legacy.root)
    done = run_cli("split", legacy, "--dry-run", "--json")
    assert done.returncode == 0, done.stderr
    assert listing(legacy.root) == before
    assert not (legacy.data / "plugins").exists()
    report = json.loads(done.stdout)
    assert report["dry_run"] is True and report["files"] == {}
    assert report["plugins"][V3[0]]["status"] == "would copy"
    assert report["preflight"]["foreign_key_problems"] == {"profit_booking_orders": 1}
    assert all(d["ok"] for d in report["preflight"]["disk"]) and report["preflight"]["writable"]
    unmapped = {d["value"] for d in report["attribution"]["unmapped"]["logic_type"]}
    assert unmapped >= {None, "", "logic1", " LOGIC1", "combinedlogic-9"}
    assert report["attribution"]["superseded_snapshots"] >= 1  # E-DUP-1: saved open, then again closed
    assert run_cli("split", legacy).returncode == 0
    assert oct((legacy.data / "plugins").stat().st_mode & 0o777) == "0o700"
    assert oct((legacy.data / "plugins" / "v6_04.db").stat().st_mode & 0o777) == "0o600"


def test_report_lists_copies_anomalies_and_progress(legacy: Project) -> None:
    done = run_cli("split", legacy)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for needle in ("v3-logic-01-5min", "reentry_chains", "unmapped logic_type", "open snapshots superseded",
                   "orphans", "shared rows", GROUP_FILE):
        assert needle in out
    assert "split: v3-logic-01-5min trades:" in done.stderr  # progress on stderr
    doc = json.loads(run_cli("split", legacy, "--json", "-q").stdout)
    assert doc["ok"] is True and doc["rows_copied"] == 0


def test_exit_codes_and_help(legacy: Project) -> None:
    assert run_cli("split", legacy, "--help").returncode == 0
    unknown = run_cli("split", legacy, "--plugin", "no-such-plugin")
    assert unknown.returncode == 2 and "no-such-plugin" in unknown.stderr
    legacy.shared_db.unlink()
    missing = run_cli("split", legacy)
    assert missing.returncode == 2 and "trading_bot.db" in missing.stderr
    assert not any(p.exists() for p in isolated_files(legacy))
