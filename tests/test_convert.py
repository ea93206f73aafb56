"""convert (SPEC 9 "Moving"): a legacy SQLite store onto a real PostgreSQL server, every value and storage class kept.

The source is the generated legacy history (every mapping case, orphans, shared lineage, a blob, text in a REAL
column, -0.0, 1e308, epoch times) plus the oddities that generator lacks (a NUL in a text, infinities, a real
and a 64-bit int in INTEGER columns). Expected owners come from SPEC 5 written out in tests/helpers.py, never
from zepix_store.attribution. Each test converts into its own schema prefix of the module's database.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml

from zepix_store.backend.postgresql.values import decode_row
from zepix_store.schema import TABLE_BY_NAME, TABLES

from .helpers import (
    Project,
    expected_owners,
    legacy_project,
    legacy_template,
    mode,
    run_cli,
    shipped_mapping,
    sqlite_config,
    typed,
)

ODD_TRADES = [  # (trade_id, column, value): mapped by logic_type LOGIC1 to v3-logic-01-5min
    ("ODD-NUL", "comment", "before\x00after"),
    ("ODD-INF", "pnl", float("inf")),
    ("ODD-NEG-INF", "commission", float("-inf")),
    ("ODD-REAL-IN-INT", "chain_level", 2.5),
    ("ODD-BIG-INT", "profit_level", 9223372036854775807),
    ("ODD-MIN-INT", "sl_adjusted", -9223372036854775808),
    ("ODD-TEXT-IN-INT", "chain_level", "two"),
    ("ODD-BLOB-PNL", "pnl", b"\x00\x01"),
    ("ODD-NEG-ZERO", "swap", -0.0),
    ("ODD-17", "pnl", 0.30000000000000004),
    ("ODD-UNICODE", "symbol", "EUR\u20acUSD \U0001f4c8"),
    ("ODD-EPOCH-REAL", "open_time", 1700000000.5),
]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = legacy_template(tmp_path_factory, trades=200, seed=23)
    conn = sqlite3.connect(path)
    with conn:
        for trade_id, column, value in ODD_TRADES:
            conn.execute(f"INSERT INTO trades (trade_id, logic_type, status, {column}) VALUES (?, 'LOGIC1', "
                         "'closed', ?)", (trade_id, value))
        conn.execute("INSERT INTO system_state (key, value, updated_at) VALUES (?, ?, 5)", ("nul\x00key", b"\xff"))
    conn.close()
    return path


_PREFIXES = iter(f"c{i}_" for i in range(1, 100))


@pytest.fixture
def desk(tmp_path: Path, template: Path, pg_dsn: str) -> tuple[Project, Path, str]:
    """A source project (every plugin shared: the legacy file holds every row) and a PostgreSQL config beside it
    (the shipped routing: v3 plugins share one schema, each v6 plugin its own)."""
    project = legacy_project(tmp_path / "desk", template)
    target = project.root / "pg-configs"
    shutil.copytree(project.configs, target)
    project.set_all_shared(True)
    prefix = next(_PREFIXES)
    doc = yaml.safe_load((target / "store.yaml").read_text())
    doc.update(backend="postgresql", postgresql={"dsn": pg_dsn, "schema_prefix": prefix},
               plugins_dir="pg-configs/plugins")
    (target / "store.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return project, target, prefix


@pytest.fixture(scope="module")
def pg(pg_dsn: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        yield conn


def convert(project: Project, target: Path, *args: object) -> tuple[int, str, str]:
    done = run_cli("convert", "--to", target, *args, config=project)
    return done.rc, done.stdout, done.stderr


def schemas(pg: psycopg.Connection[tuple[object, ...]], prefix: str) -> dict[str, str]:
    """file name -> schema, from the registry convert created."""
    rows = pg.execute(f"SELECT file_name, schema_name FROM {prefix}shared.zx_registry").fetchall()
    return {str(f): str(s) for f, s in rows}


def server_rows(pg: psycopg.Connection[tuple[object, ...]], prefix: str) -> dict[str, list[tuple[object, ...]]]:
    """table -> sorted (schema, plugin, typed values of the legacy columns) of every row on the server."""
    out: dict[str, list[tuple[object, ...]]] = {}
    for schema in schemas(pg, prefix).values():
        for table in TABLES:
            cur = pg.execute(f"SELECT * FROM {schema}.{table.name}")
            names = [d.name for d in cur.description or ()]
            for found in cur.fetchall():
                row = decode_row(table.name, dict(zip(names, found, strict=True)))
                out.setdefault(table.name, []).append(
                    (schema, row["plugin_id"], *(typed(row[c]) for c in table.column_names)))
    return {t: sorted(rows, key=repr) for t, rows in out.items()}


def expected_rows(project: Project, target: Path, pg: psycopg.Connection[tuple[object, ...]],
                  prefix: str) -> dict[str, list[tuple[object, ...]]]:
    """What SPEC 5 and the target's routing say the server must hold, from the source file alone."""
    owners = expected_owners(project.shared_db, shipped_mapping(project))
    names = schemas(pg, prefix)
    route = {}
    for folder in (target / "plugins").iterdir():
        database = json.loads((folder / "config.json").read_text())["database"]
        file_name = "trading_bot.db" if database["use_shared"] else database["isolated_db"].removeprefix("data/")
        route[folder.name] = names[file_name]
    conn = sqlite3.connect(f"file:{project.shared_db}?mode=ro", uri=True)
    out: dict[str, list[tuple[object, ...]]] = {}
    try:
        for table in TABLES:
            cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table.name})")]
            for rowid, *values in conn.execute(f"SELECT rowid, * FROM {table.name}"):
                row = dict(zip(cols, values, strict=True))
                for plugin in owners[table.name][rowid]:
                    out.setdefault(table.name, []).append(
                        (route.get(plugin, names["trading_bot.db"]), plugin,
                         *(typed(row.get(c)) for c in table.column_names)))
    finally:
        conn.close()
    return {t: sorted(rows, key=repr) for t, rows in out.items()}


def server_state(pg: psycopg.Connection[tuple[object, ...]], prefix: str) -> dict[str, list[str]]:
    """Every row of every store table and the ledger, as the server holds it (companions and zx_raw included)."""
    state = {}
    for schema in sorted(schemas(pg, prefix).values()):
        for table in TABLES:
            state[f"{schema}.{table.name}"] = sorted(str(r[0]) for r in pg.execute(
                f"SELECT row_to_json(t)::text FROM {schema}.{table.name} t").fetchall())
    state["ledger"] = sorted(str(r[0]) for r in pg.execute(
        f"SELECT row_to_json(l)::text FROM (SELECT schema_name, plugin_id, table_name, source_file, last_rowid, "
        f"rows_copied FROM {prefix}shared.zx_convert_ledger) l").fetchall())
    return state


def test_every_plugin_s_rows_arrive_where_the_target_routes_them_with_every_value_and_storage_class(
        desk: tuple[Project, Path, str], pg: psycopg.Connection[tuple[object, ...]]) -> None:
    project, target, prefix = desk
    rc, out, err = convert(project, target)
    assert rc == 0, err
    expected = expected_rows(project, target, pg, prefix)
    assert server_rows(pg, prefix) == expected
    assert set(expected) == {t.name for t in TABLES} and sum(map(len, expected.values())) > 400
    trades = expected["trades"]
    assert {r[3] for r in trades if r[3][1].startswith("'ODD-")} == {typed(t) for t, _, _ in ODD_TRADES}
    assert "done:" in out and "verified" in out


def test_a_rerun_changes_nothing_and_says_so(desk: tuple[Project, Path, str],
                                             pg: psycopg.Connection[tuple[object, ...]]) -> None:
    project, target, prefix = desk
    assert convert(project, target)[0] == 0
    before = server_state(pg, prefix)
    rc, out, err = convert(project, target)
    assert rc == 0, err
    assert "nothing to do" in out
    assert server_state(pg, prefix) == before
    pg.execute(f"DELETE FROM {prefix}shared.zx_convert_ledger")  # rows equal to the source's are taken as copied
    rc, out, err = convert(project, target)
    assert rc == 0 and "nothing to do" in out, err
    assert server_state(pg, prefix) == before


def test_the_next_row_written_after_convert_gets_a_fresh_id(desk: tuple[Project, Path, str],
                                                           pg: psycopg.Connection[tuple[object, ...]]) -> None:
    project, target, prefix = desk
    assert convert(project, target)[0] == 0
    for schema in schemas(pg, prefix).values():
        for table in ("trades", "sl_events", "profit_booking_events"):
            (top,) = pg.execute(f"SELECT max(id) FROM {schema}.{table}").fetchone() or (None,)
            if top is None:
                continue
            row = pg.execute(f"INSERT INTO {schema}.{table} (plugin_id) VALUES ('legacy') RETURNING id").fetchone()
            assert row is not None and int(str(row[0])) > int(str(top)), (schema, table)


def test_a_target_holding_other_rows_for_a_plugin_is_refused_naming_them_and_nothing_is_written(
        desk: tuple[Project, Path, str], pg: psycopg.Connection[tuple[object, ...]]) -> None:
    project, target, prefix = desk
    assert convert(project, target, "--dry-run")[0] == 0  # creates nothing: the schemas come from a first run
    assert convert(project, target)[0] == 0
    group = schemas(pg, prefix)["zepix_v3_logic_combined.db"]
    pg.execute(f"UPDATE {group}.trades SET pnl = 12345.5 WHERE trade_id = 'ODD-17'")
    pg.execute(f"INSERT INTO {group}.trades (plugin_id, trade_id) VALUES ('v3-logic-02-15min', 'FOREIGN-1')")
    pg.execute(f"DELETE FROM {prefix}shared.zx_convert_ledger WHERE table_name = 'trades' "
               "AND plugin_id IN ('v3-logic-01-5min', 'v3-logic-02-15min')")
    before = server_state(pg, prefix)
    rc, out, err = convert(project, target)
    assert rc == 1, (out, err)
    assert "FOREIGN-1" in err and "ODD-17" in err and "v3-logic-02-15min" in err and "v3-logic-01-5min" in err
    assert "nothing was written" in err
    assert server_state(pg, prefix) == before


def test_dry_run_counts_per_plugin_and_table_and_creates_nothing(
        desk: tuple[Project, Path, str], pg: psycopg.Connection[tuple[object, ...]]) -> None:
    project, target, prefix = desk
    done = run_cli("convert", "--to", target, "--dry-run", "--json", config=project)
    assert done.rc == 0, done.stderr
    doc = json.loads(done.stdout)
    owners = expected_owners(project.shared_db, shipped_mapping(project))
    counts: dict[tuple[str, str], int] = {}
    for table, rows in owners.items():
        for plugin_set in rows.values():
            for plugin in plugin_set:
                counts[(plugin, table)] = counts.get((plugin, table), 0) + 1
    assert {(u["plugin_id"], u["table"]): u["source_rows"] for u in doc["units"] if u["source_rows"]} == counts
    assert f"{prefix}shared" in doc["created"] and f"{prefix}v6_logic_01_1min" in doc["created"]
    found = pg.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE %s", [prefix + "%"]).fetchone()
    assert found == (0,)


def test_a_source_that_is_not_sqlite_or_a_target_that_is_not_postgresql_is_refused(
        desk: tuple[Project, Path, str]) -> None:
    project, _target, _prefix = desk
    rc, _out, err = convert(project, project.configs)
    assert rc == 2 and "PostgreSQL" in err, err


def test_an_unreachable_server_is_exit_7(desk: tuple[Project, Path, str], tmp_path: Path) -> None:
    project, target, _prefix = desk
    doc = yaml.safe_load((target / "store.yaml").read_text())
    doc["postgresql"]["dsn"] = f"host={tmp_path} port=1 dbname=none user=zx"
    (target / "store.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    rc, _out, err = convert(project, target)
    assert rc == 7, err


def test_isolated_files_are_read_where_the_source_routes_each_plugin_and_copies_left_behind_are_named(
        desk: tuple[Project, Path, str], pg: psycopg.Connection[tuple[object, ...]]) -> None:
    project, target, prefix = desk
    project.set_all_shared(False)
    assert run_cli("split", config=project).rc == 0
    group = project.isolated_db("v3-logic-01-5min")
    conn = sqlite3.connect(group)
    try:
        with conn:  # the bot's writes after the split: only the isolated file has them
            conn.execute("INSERT INTO trades (trade_id, plugin_id, pnl) VALUES ('BOT-NEW-1', 'v3-logic-01-5min', 1.5)")
            conn.execute("UPDATE trades SET pnl = 99.25 WHERE id = (SELECT min(id) FROM trades)")
        cols = [r[1] for r in conn.execute("PRAGMA table_info(trades)")]
        isolated = sorted((str(r[cols.index("plugin_id")]), *(typed(v) for v in r))
                          for r in conn.execute("SELECT * FROM trades"))
    finally:
        conn.close()
    done = run_cli("convert", "--to", target, "--json", config=project)
    assert done.rc == 0, done.stderr
    doc = json.loads(done.stdout)
    assert any("v3-logic-01-5min not copied" in w and "split" in w for w in doc["warnings"]), doc["warnings"]
    schema = schemas(pg, prefix)["zepix_v3_logic_combined.db"]
    cur = pg.execute(f"SELECT * FROM {schema}.trades")
    names = [d.name for d in cur.description or ()]
    decoded = [decode_row("trades", dict(zip(names, r, strict=True))) for r in cur.fetchall()]
    assert sorted((str(r["plugin_id"]), *(typed(r[c]) for c in cols)) for r in decoded) == isolated
    assert len(isolated) > 100


def test_one_convert_per_target_and_no_synchronisation_of_a_source_plugin_meanwhile(
        desk: tuple[Project, Path, str], pg_dsn: str) -> None:
    from zepix_store.ops.convert_target import lock_key
    from zepix_store.plugin_lock import plugin_locks

    project, target, prefix = desk
    with psycopg.connect(pg_dsn, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [lock_key(prefix)])
        rc, _out, err = convert(project, target)
        assert rc == 4 and "another convert" in err, err
    with plugin_locks(project.data, ["v6-logic-02-5min"], "test holder"):
        done = run_cli("convert", "--to", target, "--lock-wait", "0.3", config=project, process=True)
        assert done.rc == 4 and "v6-logic-02-5min" in done.stderr, done.stderr
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        found = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE %s", [prefix + "%"]).fetchone()
    assert found == (0,)  # refused before anything was created


# --- the way back: PostgreSQL -> SQLite ----------------------------------------------------------------------------


def file_rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """table -> every row of the file, type-tagged, sorted (the rowid alias id included: ids must come back)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {t.name: sorted((tuple(typed(v) for v in r) for r in conn.execute(
            f"SELECT {', '.join(t.all_column_names)} FROM {t.name}")), key=repr) for t in TABLES}
    finally:
        conn.close()


def test_sqlite_to_postgresql_and_back_gives_every_row_back_equal_storage_classes_included(
        desk: tuple[Project, Path, str], pg: psycopg.Connection[tuple[object, ...]]) -> None:
    project, target, prefix = desk
    assert run_cli("migrate", config=project).rc == 0  # the plugin_id of every row decided in the file itself
    original = file_rows(project.shared_db)
    assert convert(project, target)[0] == 0
    back = sqlite_config(project, "back", use_shared=True, make_data=False)  # a new desk: no data folder yet
    done = run_cli("convert", "--config", target, "--to", back, "--json")
    assert done.rc == 0, done.stderr
    assert json.loads(done.stdout)["rows_copied"] == sum(map(len, original.values()))
    returned = project.root / "back-data" / "trading_bot.db"
    assert file_rows(returned) == original
    assert mode(returned) == 0o600 and mode(returned.parent) == 0o700  # owner-only, as the store makes them
    assert sum(map(len, original.values())) > 400 and any("ODD-NUL" in repr(r) for r in original["trades"])
    again = run_cli("convert", "--config", target, "--to", back)
    assert again.rc == 0 and "nothing to do" in again.stdout, again.stderr
    assert file_rows(returned) == original


def test_the_way_back_routes_each_plugin_to_its_file_and_refuses_a_file_holding_other_rows(
        desk: tuple[Project, Path, str], pg: psycopg.Connection[tuple[object, ...]]) -> None:
    project, target, prefix = desk
    assert convert(project, target)[0] == 0
    back = sqlite_config(project, "iso", use_shared=False)
    group = project.root / "iso-data" / "zepix_v3_logic_combined.db"
    group.touch(mode=0o600)  # as a run killed before the new file's schema committed leaves it: empty
    assert run_cli("convert", "--config", target, "--to", back, "--dry-run").rc == 0
    assert group.stat().st_size == 0 and not (group.parent / "trading_bot.db").exists()  # a dry run writes none
    done = run_cli("convert", "--config", target, "--to", back)
    assert done.rc == 0, done.stderr
    on_server = {r[0] for r in pg.execute(f"SELECT DISTINCT plugin_id FROM {prefix}v3_logic_combined.trades")}
    in_file = {r[0] for r in sqlite3.connect(f"file:{group}?mode=ro", uri=True).execute(
        "SELECT DISTINCT plugin_id FROM trades")}
    assert in_file == on_server and "v3-logic-01-5min" in in_file
    assert run_cli("verify", "--config", back).rc == 0  # every routed file exists (empty ones too), all checks pass
    for table, keep_id in (("trades", True), ("sl_events", False)):  # events of shared lineage may get new ids
        cols = [c for c in TABLE_BY_NAME[table].all_column_names if keep_id or c != "id"]
        cur = pg.execute(f"SELECT * FROM {prefix}v3_logic_combined.{table}")
        names = [d.name for d in cur.description or ()]
        server = sorted(tuple(typed(decode_row(table, dict(zip(names, r, strict=True)))[c]) for c in cols)
                        for r in cur.fetchall())
        conn = sqlite3.connect(f"file:{group}?mode=ro", uri=True)
        local = sorted(tuple(typed(v) for v in r) for r in conn.execute(f"SELECT {', '.join(cols)} FROM {table}"))
        conn.close()
        assert local == server, table
    assert any("got a new id" in line for line in done.stdout.splitlines()), done.stdout
    conn = sqlite3.connect(group)
    with conn:
        conn.execute("UPDATE trades SET pnl = 4321.5 WHERE trade_id = 'ODD-17'")
        conn.execute(f"DELETE FROM {'zx_convert_ledger'} WHERE table_name = 'trades'")
    conn.close()
    refused = run_cli("convert", "--config", target, "--to", back)
    assert refused.rc == 1 and "ODD-17" in refused.stderr and "nothing was written" in refused.stderr, refused.stderr


def test_progress_names_each_plugin_and_table_with_its_total_for_the_rate_and_eta(
        desk: tuple[Project, Path, str]) -> None:
    from zepix_store.config import load_config
    from zepix_store.ops.convert import convert as run

    class Recorder:
        def __init__(self) -> None:
            self.units: list[list[object]] = []

        def start(self, label: str, total: int | None = None, unit: str = "rows") -> None:
            self.units.append([label, total, unit, 0])

        def advance(self, n: int = 1) -> None:
            self.units[-1][3] = int(str(self.units[-1][3])) + n

        def done(self) -> None:
            pass

    project, target, _prefix = desk
    seen = Recorder()
    report = run(load_config(project.configs), load_config(target), chunk_rows=50, progress=seen)
    copies = {str(label): (total, done) for label, total, unit, done in seen.units if unit == "rows"}
    assert copies == {f"convert {u.plugin_id} {u.table}": (u.source_rows, u.source_rows)
                      for u in report.units if u.status == "copied"}
    assert len(copies) > 20 and report.ok


def test_rows_with_nowhere_to_go_are_refused_before_anything_is_written(
        desk: tuple[Project, Path, str], pg: psycopg.Connection[tuple[object, ...]]) -> None:
    project, target, prefix = desk
    project.set_use_shared("v3-logic-02-15min", False)  # routed to a group file that was never split into
    rc, _out, err = convert(project, target)
    assert rc == 2 and "v3-logic-02-15min" in err and "split" in err, err
    project.set_use_shared("v3-logic-02-15min", True)
    shutil.rmtree(target / "plugins" / "v6-logic-04-1h")
    rc, _out, err = convert(project, target)
    assert rc == 2 and "v6-logic-04-1h" in err, err
    found = pg.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE %s", [prefix + "%"]).fetchone()
    assert found == (0,)
