"""verify: every check the move to per-plugin stores promises, read-only, as a report (see zepix-store verify)."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import attribution
from ..attribution_report import AttributionReport, attribution_report
from ..backend.sqlite_file import BUSY_TIMEOUT_MS, read_snapshot, translated_errors
from ..config import StoreConfig
from ..errors import EXIT_BUSY, EXIT_CHECK_FAILED, EXIT_IO, EXIT_OK, EXIT_UNAVAILABLE, StoreError
from ..literal import show_value
from ..progress import NO_PROGRESS, ProgressSink
from ..schema import (
    ATTRIBUTION_ORDER,
    DEFAULT_PLUGIN_ID,
    SCHEMA_VERSION,
    TABLE_BY_NAME,
    TABLES,
)
from ..words import count, verb
from .sync.check import CopyCheck, check_copies, check_sync_duplicates
from .sync.columns import columns_for
from .sync.files import READ, attach, check_regular_file, has_table, open_scratch
from .sync.identity import has_identity, mapping_changes, mapping_record, recorded_mapping, segment

__all__ = ["LIST_LIMIT", "OK", "Check", "VerifyReport", "listed", "verify"]

OK, FAIL, WARN, SKIP = "ok", "FAIL", "warn", "skip"
LIST_LIMIT = 5  # items of a list named in one detail; the rest are counted
_ENVIRONMENT_CODES = (EXIT_IO, EXIT_BUSY, EXIT_UNAVAILABLE)  # errors that say nothing about the data


def listed(items: Sequence[str], sep: str = "; ", limit: int = LIST_LIMIT) -> str:
    """`a; b; c; d; e; and 12 more`: a long list stays readable, and says how long it was."""
    shown = sep.join(items[:limit])
    return shown + (f"{sep}and {len(items) - limit} more" if len(items) > limit else "")


@dataclass
class Check:
    name: str
    status: str
    detail: str
    # A check that could not run for the machine's sake (disk full, I/O, busy): the error's exit code, so the
    # command reports "could not verify" (3, 4) rather than "the data is wrong" (1).
    error_code: int | None = field(default=None, compare=False)


@dataclass
class VerifyReport:
    checks: list[Check] = field(default_factory=list)
    progress: ProgressSink = field(default=NO_PROGRESS, repr=False, compare=False)

    def add(self, name: str, status: str, detail: str, error: StoreError | None = None) -> None:
        code = error.exit_code if error is not None and error.exit_code in _ENVIRONMENT_CODES else None
        self.checks.append(Check(name, status, detail, code))
        self.progress.advance(1)

    def counts(self) -> dict[str, int]:
        """Checks per status: ok, warned, failed, skipped."""
        by = {OK: "ok", WARN: "warned", FAIL: "failed", SKIP: "skipped"}
        counted = {word: 0 for word in by.values()}
        for check in self.checks:
            counted[by[check.status]] += 1
        return counted

    def summary(self) -> str:
        """The one closing line: `verify: 31 checks: 28 ok, 2 warned, 1 failed, 0 skipped`."""
        counted = self.counts()
        return f"verify: {count(len(self.checks), 'check')}: " + ", ".join(f"{n} {word}" for word, n in counted.items())

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if c.status == FAIL]

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def exit_code(self) -> int:
        """0 all passed; 1 a check found the data wrong; else the code of what kept a check from running (3 disk
        full or I/O, 4 busy): a script must not read "could not look" as "the data is damaged"."""
        failed = [c for c in self.checks if c.status == FAIL]
        if not failed:
            return EXIT_OK
        if any(c.error_code is None for c in failed):
            return EXIT_CHECK_FAILED
        return min(c.error_code for c in failed if c.error_code is not None)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "failed": self.failed, "counts": self.counts(),
                "checks": [{"name": c.name, "status": c.status, "detail": c.detail} for c in self.checks]}


def verify(config: StoreConfig, progress: ProgressSink = NO_PROGRESS) -> VerifyReport:
    """Run every check read-only; the report lists each one (never raises for a failed check)."""
    report = VerifyReport(progress=progress)
    progress.start("verify", _expected_checks(config), "checks")
    conn = open_scratch(BUSY_TIMEOUT_MS)
    try:
        present = _check_shared(conn, config, report)
        for path, pids in _isolated_files(config, report).items():
            _check_isolated(conn, config, path, pids, present, report)
    finally:
        conn.close()
        progress.done()
    return report


def _expected_checks(config: StoreConfig) -> int:
    """About how many checks verify makes (for the progress ETA): shared file, each plugin, each isolated file."""
    isolated = [p for p in config.plugins.values() if p.isolated_db is not None]
    return 11 + len(config.plugins) + 7 * len({p.isolated_db for p in isolated}) + len(isolated)


def _run(report: VerifyReport, name: str, check: Callable[[], tuple[str, str]]) -> str:
    """Record `check()`'s (status, detail) under `name`; an error while checking is a failure."""
    try:
        status, detail = check()
    except StoreError as exc:
        report.add(name, FAIL, f"could not check: {exc}", exc)
        return FAIL
    except sqlite3.Error as exc:
        status, detail = FAIL, f"could not check: {exc}"
    report.add(name, status, detail)
    return status


def _isolated_files(config: StoreConfig, report: VerifyReport) -> dict[Path, list[str]]:
    """Each existing isolated file with the plugins routed to it; an isolated plugin without its file fails."""
    files: dict[Path, list[str]] = {}
    for name, problem in sorted(config.disabled.items()):
        report.add(f"config:{name}", FAIL, f"left out: {problem}")
    for pid, plugin in sorted(config.plugins.items()):
        path = plugin.isolated_db
        if path is None:
            report.add(f"config:{pid}", OK, "uses the shared file (no isolated_db)")
            continue
        exists = check_regular_file(path)
        if exists:
            files.setdefault(path, []).append(pid)
        if plugin.use_shared:
            report.add(f"config:{pid}", OK, f"uses the shared file {config.shared_db}")
        elif exists:
            report.add(f"config:{pid}", OK, f"isolated in {path}")
        else:
            report.add(f"config:{pid}", FAIL, f"isolated, but {path} does not exist: run split")
    return files


# --- one file ---------------------------------------------------------------------------------------------


def _attach(conn: sqlite3.Connection, path: Path, schema: str, report: VerifyReport) -> bool:
    try:
        with translated_errors(path):
            attach(conn, path, schema, READ)
            conn.execute(f"SELECT count(*) FROM {schema}.sqlite_master").fetchone()
    except StoreError as exc:
        report.add(f"integrity:{path.name}", FAIL, str(exc), exc)
        if schema in [row[1] for row in conn.execute("PRAGMA database_list")]:
            conn.execute(f"DETACH DATABASE {schema}")
        return False
    return True


def _file_checks(conn: sqlite3.Connection, schema: str, path: Path, shared: bool, report: VerifyReport) -> bool:
    """integrity, foreign keys, version, columns, indexes; return whether the file is at the current version."""
    name = path.name
    _run(report, f"integrity:{name}", lambda: _integrity(conn, schema))
    _run(report, f"foreign_keys:{name}", lambda: _foreign_keys(conn, schema, shared))
    version = int(conn.execute(f"PRAGMA {schema}.user_version").fetchone()[0])
    if version == 0 and shared:
        report.add(f"schema_version:{name}", WARN, "legacy file (version 0), not migrated: split leaves it "
                   "unchanged; migrate, or the bot's first shared use, upgrades it")
        for check in ("columns", "indexes", "attribution"):
            report.add(f"{check}:{name}", SKIP, "legacy file")
        return False
    good = version == SCHEMA_VERSION
    report.add(f"schema_version:{name}", OK if good else FAIL,
               f"user_version {version}" + ("" if good else f", this zepix_store writes {SCHEMA_VERSION}"))
    _run(report, f"columns:{name}", lambda: _columns(conn, schema))
    _run(report, f"indexes:{name}", lambda: _indexes(conn, schema))
    return good


def _integrity(conn: sqlite3.Connection, schema: str) -> tuple[str, str]:
    rows = [str(r[0]) for r in conn.execute(f"PRAGMA {schema}.integrity_check")]
    return (OK, "ok") if rows == ["ok"] else (FAIL, "; ".join(rows[:5]))


def _foreign_keys(conn: sqlite3.Connection, schema: str, shared: bool) -> tuple[str, str]:
    bad = conn.execute("SELECT [table], count(*) FROM pragma_foreign_key_check(NULL, ?) GROUP BY 1",
                       (schema,)).fetchall()
    if not bad:
        return OK, "no dangling references"
    detail = listed([f"{t}: {count(n, 'row')} {verb(n, 'references', 'reference')} a missing parent"
                     for t, n in bad], ", ")
    return (WARN, detail + " (legacy data, kept as it is)") if shared else (FAIL, detail)


def _columns(conn: sqlite3.Connection, schema: str) -> tuple[str, str]:
    problems = []
    for table in TABLES:
        info = {r[1]: r for r in conn.execute(f"PRAGMA {schema}.table_info({table.name})")}
        if not info:
            problems.append(f"{table.name}: table missing")
            continue
        if missing := [c for c in table.all_column_names if c not in info]:
            problems.append(f"{table.name}: missing {', '.join(missing)}")
        elif not (info["plugin_id"][3] == 1 and info["plugin_id"][4] == f"'{DEFAULT_PLUGIN_ID}'"):
            problems.append(f"{table.name}: plugin_id is not NOT NULL DEFAULT '{DEFAULT_PLUGIN_ID}'")
    return (FAIL, listed(problems)) if problems else (OK, "plugin_id NOT NULL DEFAULT 'legacy' on all tables")


def _indexes(conn: sqlite3.Connection, schema: str) -> tuple[str, str]:
    have = {r[0] for r in conn.execute(f"SELECT name FROM {schema}.sqlite_master WHERE type = 'index'")}
    missing = [name for table in TABLES for name, _ in table.indexes if name not in have]
    return (FAIL, "missing " + listed(missing, ", ")) if missing else (OK, f"{count(len(have), 'index')} present")


def _attribution(conn: sqlite3.Connection, schema: str, routed: Sequence[str] | None) -> tuple[str, str]:
    """No NULL plugin_id; in an isolated file, no row of a plugin that is not routed to it."""
    problems = []
    for table in TABLES:
        if routed is None:
            q = f"SELECT NULL, count(*) FROM {schema}.{table.name} WHERE plugin_id IS NULL HAVING count(*) > 0"
            args: Sequence[str] = ()
        else:
            q = (f"SELECT plugin_id, count(*) FROM {schema}.{table.name} WHERE plugin_id IS NULL OR plugin_id NOT IN "
                 f"({', '.join('?' * len(routed))}) GROUP BY plugin_id")
            args = routed
        problems += [f"{table.name}: {count(n, 'row')} under {pid!r}" for pid, n in conn.execute(q, args)]
    if problems:
        return FAIL, listed(problems) + ("" if routed is None else f" (routed here: {', '.join(routed)})")
    return OK, "every row attributed" + ("" if routed is None else " to a plugin routed to this file")


# --- the shared file --------------------------------------------------------------------------------------


def _check_shared(conn: sqlite3.Connection, config: StoreConfig, report: VerifyReport) -> dict[str, set[str]] | None:
    """File checks and attribution buckets of the shared file, attached as `sh`; return its tables' columns."""""
    path = config.shared_db
    if not check_regular_file(path):
        report.add("config:shared_db", FAIL, f"{path} does not exist")
        return None
    report.add("config:shared_db", OK, str(path))
    if not _attach(conn, path, "sh", report):
        return None
    current = _file_checks(conn, "sh", path, True, report)
    if current:
        _run(report, f"attribution:{path.name}", lambda: _attribution(conn, "sh", None))
    try:
        # One snapshot: the bot may commit between the attribution and the counts of the same table.
        with translated_errors(path), read_snapshot(conn):
            present = attribution.build_owners(conn, "sh", config.rules)
            _run(report, "buckets", lambda: _buckets(conn, present))
            rules = attribution_report(conn, "sh", config.rules, present)
        report.add("attribution:rules", *_rules(rules))
        report.add("duplicates", *_duplicates(rules))
    except StoreError as exc:  # a damaged page: already named by the integrity check; report, do not crash
        report.add("buckets", FAIL, f"could not attribute the rows: {exc}", exc)
        return None
    return present


def _buckets(conn: sqlite3.Connection, present: dict[str, set[str]]) -> tuple[str, str]:
    wrong = []
    for name in present:
        b = attribution.count_buckets(conn, "sh", name)
        if b.bucket_total != b.source_rows:
            wrong.append(f"{name}: buckets hold {count(b.bucket_total, 'row')}, the table {b.source_rows:,}")
    every = f"every row of {count(len(present), 'table')} in exactly one bucket"
    return (FAIL, listed(wrong)) if wrong else (OK, every)


def _rules(rules: AttributionReport) -> tuple[str, str]:
    """Warn when the default id keeps more than half of the trades: the mapping misses the history's values."""
    detail = rules.summary()
    if not rules.mostly_unattributed or not rules.trades:
        return OK, detail
    top = "; ".join(f"{column}: " + ", ".join(f"{show_value(v.value)} x{v.kept:,}" for v in values[:5] if v.kept)
                    for column, values in rules.unmapped.items() if any(v.kept for v in values))
    share = f"{100 * rules.unattributed / rules.trades:.0f}%"
    return WARN, (f"{rules.unattributed:,} of {count(rules.trades, 'trade')} ({share}) "
                  f"stay with {rules.default_plugin_id}: check store.yaml's mapping and mapping_columns. {detail}"
                  + (f"; values kept there: {top}" if top else ""))


def _duplicates(rules: AttributionReport) -> tuple[str, str]:
    superseded = f"{count(rules.superseded_snapshots, 'open snapshot')} superseded by a later row (not open positions)"
    if not rules.conflicts_total:
        return OK, superseded + "; no trade_id with several closed rows"
    shown = ", ".join(f"{c.plugin_id} {show_value(c.trade_id)} x{c.rows}" for c in rules.conflicts[:5])
    more = rules.conflicts_total - min(5, len(rules.conflicts))
    return WARN, (f"{count(rules.conflicts_total, 'trade_id')} with several closed rows (kept as they are): {shown}"
                  + (f", ... and {more:,} more" if more > 0 else "") + f"; {superseded}")


# --- isolated files ---------------------------------------------------------------------------------------


def _check_isolated(conn: sqlite3.Connection, config: StoreConfig, path: Path, pids: list[str],
                    present: dict[str, set[str]] | None, report: VerifyReport) -> None:
    if not _attach(conn, path, "iso", report):
        return
    try:
        if not _file_checks(conn, "iso", path, False, report):
            return
        # a plugin left out for its broken config may be routed here: its rows are not another plugin's
        routed = [*pids, *sorted(config.disabled)]
        _run(report, f"attribution:{path.name}", lambda: _attribution(conn, "iso", routed))
        _run(report, f"mapping:{path.name}", lambda: _mapping(conn, config))
        for pid in pids:
            if present is not None and has_identity(conn):
                _run(report, f"sync-pairs:{pid}", functools.partial(_sync_pairs, conn, pid, present))
            if config.plugins[pid].use_shared:
                report.add(f"copies:{pid}", SKIP, "uses the shared file now (its isolated rows are history)")
            elif present is not None:
                _run(report, f"copies:{pid}", functools.partial(_copies, conn, pid, present))
    finally:
        conn.execute("DETACH DATABASE iso")


def _mapping(conn: sqlite3.Connection, config: StoreConfig) -> tuple[str, str]:
    recorded = recorded_mapping(conn, "iso")
    current = mapping_record(config.mapping, config.default_plugin_id, config.mapping_columns)
    if recorded is None:
        return SKIP, "no split has written this file"
    if recorded != current:
        return FAIL, f"split used another mapping ({mapping_changes(recorded, current)}): run split --remap"
    return OK, "split used the current mapping"


def _sync_pairs(conn: sqlite3.Connection, pid: str, present: dict[str, set[str]]) -> tuple[str, str]:
    """The identity map pairs each row once, and no synchronisation copied a row twice (either side)."""
    out = CopyCheck()
    for name in ATTRIBUTION_ORDER:
        if name in present and has_table(conn, "iso", name):
            table = TABLE_BY_NAME[name]
            check_sync_duplicates(conn, table, columns_for(conn, table, present[name]), pid,
                                  segment(conn, table, pid), "plugin_id" in present[name], out)
    if out.problems:
        return FAIL, f"plugin {pid}: " + listed(out.problems)
    return OK, "every row paired once, no row copied twice"


def _copies(conn: sqlite3.Connection, pid: str, present: dict[str, set[str]]) -> tuple[str, str]:
    """Every source row of `pid` copied; copies equal to their source or the bot's newer write (section 5a)."""
    out = CopyCheck()
    for name in ATTRIBUTION_ORDER:
        if name not in present or not has_table(conn, "iso", name):
            continue
        table = TABLE_BY_NAME[name]
        if not has_identity(conn):
            owned = conn.execute(f"SELECT count(DISTINCT src_rowid) FROM {attribution.owner_table(name)} "
                                 "WHERE plugin_id = ?", (pid,)).fetchone()[0]
            if owned:
                out.problems.append(f"{name}: {count(owned, 'row')} of the plugin in the shared file not copied: "
                                    "run split")
            continue
        check_copies(conn, table, columns_for(conn, table, present[name]), pid, segment(conn, table, pid), out)
    if out.problems:
        return FAIL, f"plugin {pid}: " + listed(out.problems)
    detail = f"{count(out.compared, 'copy')} traced to their source rows ({out.newer:,} changed since by the bot)"
    if out.warnings:
        return WARN, f"plugin {pid}: " + listed(out.warnings) + f"; {detail}"
    return OK, detail


