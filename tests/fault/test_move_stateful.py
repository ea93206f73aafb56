"""Moving one plugin back and forth while the bot and an old bot write: a Hypothesis state machine.

Rules: the bot writes where the plugin's config routes it (new trades, closes of existing ones, re-entry chains
by chain_id, system_state by key); an old bot writes into the shared file while the plugin is isolated; split
(the config set to isolated by hand first), merge (the config set to shared by hand first), flip both ways,
flip --prune, and restore of the pre-prune backup a flip --prune just made of the place the plugin left.

The model holds each of the plugin's rows at its latest state (all ten tables: the rows the rules touch by
natural key, the rest of the legacy history as a multiset). After every step the place the config routes the
plugin to holds exactly the model (nothing twice, nothing missing, nothing stale); after every synchronisation
`stats --plugin` totals equal the model's and `verify` exits 0. Writes still pending on the other side may make
verify exit 1 only if it names one of them. A row changed on both sides since the last synchronisation must
refuse the synchronisation naming the row (nothing of the plugin written), then `--prefer` resolves it.

Commands run in-process through their `main([...])` (nothing is killed here); every file is a real SQLite file.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sqlite3
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from zepix_store.attribution import build_owners, owner_table
from zepix_store.config import load_config
from zepix_store.legacy_data import build_legacy_db
from zepix_store.schema import TABLE_BY_NAME, TABLES, Table

from ..helpers import Project, copy_database, scaled

PLUGIN = "v6-logic-01-1min"  # a file of its own; LOGIC1 is mapped to it below
KEYS = {"trades": "trade_id", "reentry_chains": "chain_id", "system_state": "key"}  # tables the rules write
STATE_KEYS = ("lifetime_loss", "risk_mode")
NUMERIC_PNL = "pnl BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308"
_TEMPLATE: dict[str, Path] = {}
Key = tuple[str, str]  # (table, natural key)


def template() -> Path:
    if "db" not in _TEMPLATE:
        path = Path(tempfile.mkdtemp(prefix="zepix-move-template-")) / "trading_bot.db"
        build_legacy_db(path, trades=200, seed=23)
        _TEMPLATE["db"] = path
    return _TEMPLATE["db"]


def content_columns(table: Table) -> list[str]:
    return [c.name for c in table.columns if not c.decl.upper().startswith("INTEGER PRIMARY KEY")]


def command(name: str, *argv: str) -> tuple[int, str]:
    """`zepix-store NAME ARGV...` in this process; (exit code, stdout + stderr)."""
    import importlib

    module = importlib.import_module(f"zepix_store.{name}")
    out, err = io.StringIO(), io.StringIO()
    os.environ.pop("ZEPIX_FAULT", None)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = module.main(list(argv))
    return code, out.getvalue() + err.getvalue()


class Rows:
    """The plugin's rows in one file: per table, (rowid, content tuple)."""

    def __init__(self, rows: dict[str, list[tuple[int, tuple[Any, ...]]]]) -> None:
        self.rows = rows

    def counter(self, table: str) -> Counter[tuple[Any, ...]]:
        return Counter(t for _, t in self.rows[table])

    def find(self, table: str, key: str) -> list[int]:
        idx = content_columns(TABLE_BY_NAME[table]).index(KEYS[table])
        return [r for r, t in self.rows[table] if t[idx] == key]


class MovePlugin(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="zepix-move-"))
        self.project = Project(self.tmp / "p")
        copy_database(template(), self.project.shared_db)
        store = self.project.configs / "store.yaml"
        store.write_text(store.read_text().replace("LOGIC1: v3-logic-01-5min", f"LOGIC1: {PLUGIN}"))
        self.project.set_all_shared(True)
        self.routed = "shared"
        self.migrated = False  # merge and flip --to shared refuse a never-migrated shared file
        self.n = 0
        self.keyed: dict[Key, tuple[Any, ...]] = {}        # rows the rules write, by natural key
        self.rest: dict[str, Counter[tuple[Any, ...]]] = {}  # the rest of the plugin's history
        self.pending: dict[Key, tuple[Any, ...]] = {}      # the old bot's writes not yet synchronised
        self.dirty_iso: set[Key] = set()                   # changed in the isolated file since the last sync
        self.dirty_sh: set[Key] = set()                    # changed in the shared file since the last sync
        self.restorable: tuple[str, Path] | None = None    # (which file, backup) made by the last step
        self.trace: list[str] = []

    def teardown(self) -> None:
        if os.environ.get("ZEPIX_MOVE_TRACE"):  # a file to append each example's steps to
            with open(os.environ["ZEPIX_MOVE_TRACE"], "a") as f:
                f.write(" | ".join(self.trace) + "\n")
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- files --------------------------------------------------------------------------------------------------

    @property
    def iso(self) -> Path:
        return self.project.isolated_db(PLUGIN)

    def path(self, side: str) -> Path:
        return self.project.shared_db if side == "shared" else self.iso

    def has_plugin_id(self, side: str, table: str) -> bool:
        conn = sqlite3.connect(f"file:{self.path(side)}?mode=ro", uri=True)
        try:
            return "plugin_id" in {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        finally:
            conn.close()

    def read(self, side: str) -> Rows:
        """The plugin's rows: in its isolated file by plugin_id, in the shared file by the attribution."""
        out: dict[str, list[tuple[int, tuple[Any, ...]]]] = {t.name: [] for t in TABLES}
        if side == "isolated" and not self.iso.exists():
            return Rows(out)
        conn = sqlite3.connect(":memory:")
        try:
            conn.execute("ATTACH DATABASE ? AS sh", (f"file:{self.path(side)}?mode=ro",))
            if side == "shared":
                build_owners(conn, "sh", load_config(self.project.configs).rules)
            for t in TABLES:
                cols = ", ".join(f"x.{c}" for c in content_columns(t))
                where = (f"x.rowid IN (SELECT src_rowid FROM {owner_table(t.name)} WHERE plugin_id = ?)"
                         if side == "shared" else "x.plugin_id = ?")
                out[t.name] = [(r[0], tuple(r[1:])) for r in
                               conn.execute(f"SELECT x.rowid, {cols} FROM sh.{t.name} x WHERE {where}", (PLUGIN,))]
        finally:
            conn.close()
        return Rows(out)

    def row(self, side: str, table: str, rowid: int) -> tuple[Any, ...]:
        conn = sqlite3.connect(self.path(side))
        try:
            got = conn.execute(f"SELECT {', '.join(content_columns(TABLE_BY_NAME[table]))} FROM {table} "
                               "WHERE rowid = ?", (rowid,)).fetchone()
        finally:
            conn.close()
        assert got is not None
        return tuple(got)

    def write(self, side: str, sql: str, params: tuple[Any, ...]) -> int:
        conn = sqlite3.connect(self.path(side), isolation_level=None, timeout=10)
        try:
            cur = conn.execute(sql, params)
            assert cur.rowcount == 1, (sql, params)
            return int(cur.lastrowid or 0)
        finally:
            conn.close()

    def expected(self, table: str) -> Counter[tuple[Any, ...]]:
        got = Counter(self.rest[table])
        got.update(v for (t, _), v in self.keyed.items() if t == table)
        return got

    # --- setup ----------------------------------------------------------------------------------------------------

    @initialize(migrated=st.booleans())
    def start(self, migrated: bool) -> None:
        if migrated:
            code, out = command("migrate", "--config", str(self.project.configs), "-q")
            assert code == 0, out
        self.migrated = migrated
        self.trace.append(f"start(migrated={migrated})")
        rows = self.read("shared")
        idx = content_columns(TABLE_BY_NAME["trades"]).index("trade_id")
        ids = Counter(t[idx] for _, t in rows.rows["trades"])
        for t in TABLES:
            self.rest[t.name] = Counter()
            for _, tup in rows.rows[t.name]:
                if t.name == "trades" and tup[idx] is not None and ids[tup[idx]] == 1:
                    self.keyed[("trades", tup[idx])] = tup
                else:
                    self.rest[t.name][tup] += 1
        assert self.keyed, "the history gives the plugin no trade to close"

    # --- the bot, where the config routes the plugin -------------------------------------------------------------

    def fresh(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}-{self.n}"

    def insert(self, side: str, table: str, values: dict[str, Any]) -> tuple[Any, ...]:
        if self.has_plugin_id(side, table):
            values = {**values, "plugin_id": PLUGIN}
        rowid = self.write(side, f"INSERT INTO {table} ({', '.join(values)}) VALUES "
                                 f"({', '.join('?' for _ in values)})", tuple(values.values()))
        return self.row(side, table, rowid)

    def update(self, side: str, key: Key, values: dict[str, Any]) -> tuple[Any, ...]:
        table, nk = key
        (rowid,) = self.read(side).find(table, nk)
        self.write(side, f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in values)} WHERE rowid = ?",
                   (*values.values(), rowid))
        return self.row(side, table, rowid)

    def bot_wrote(self, key: Key, tup: tuple[Any, ...]) -> None:
        self.keyed[key] = tup
        (self.dirty_iso if self.routed == "isolated" else self.dirty_sh).add(key)

    def candidates(self, table: str, side: str, conflict: bool, others: set[Key]) -> list[Key]:
        """Keyed rows of `table` present on `side`; rows changed on the other side only when `conflict`."""
        present = self.read(side)
        keys = [k for k in sorted(self.keyed) if k[0] == table and len(present.find(table, k[1])) == 1]
        return [k for k in keys if conflict or k not in others]

    @staticmethod
    def choose(keys: list[Key], pick: int, conflict: bool, others: set[Key]) -> Key:
        """A row of `keys`; with `conflict`, one the other side changed since the last sync when there is one."""
        both = [k for k in keys if k in others] if conflict else []
        return (both or keys)[pick % len(both or keys)]

    @rule(kind=st.sampled_from(["new_trade", "close", "new_chain", "chain", "state"]), pick=st.integers(0, 10_000),
          conflict=st.sampled_from([False, False, True]), closed=st.booleans(), pnl=st.integers(-50, 50),
          name=st.sampled_from(STATE_KEYS))
    def bot_writes(self, kind: str, pick: int, conflict: bool, closed: bool, pnl: int, name: str) -> None:
        """The bot writes into the place its config routes the plugin to."""
        if kind == "new_trade":
            self.bot_new_trade(closed, pnl)
        elif kind == "close":
            self.bot_closes_trade(pick, conflict)
        elif kind in ("new_chain", "chain"):
            self.bot_chain(kind == "new_chain", pick, conflict)
        else:
            self.bot_state(name, conflict)

    @precondition(lambda self: self.routed == "isolated")
    @rule(kind=st.sampled_from(["new_trade", "close", "close", "state"]), pick=st.integers(0, 10_000),
          conflict=st.sampled_from([False, True]), closed=st.booleans(), name=st.sampled_from(STATE_KEYS))
    def old_bot_writes(self, kind: str, pick: int, conflict: bool, closed: bool, name: str) -> None:
        """An old bot (or one that has not seen the new config) writes into the shared file."""
        if kind == "new_trade":
            self.old_bot_new_trade(closed)
        elif kind == "close":
            self.old_bot_closes_trade(pick, conflict)
        else:
            self.old_bot_state(name, conflict)

    def bot_new_trade(self, closed: bool, pnl: int) -> None:
        key = ("trades", self.fresh("B"))
        tup = self.insert(self.routed, "trades", {"trade_id": key[1], "symbol": "EURUSD", "logic_type": "LOGIC1",
                                                  "status": "closed" if closed else "open", "pnl": pnl + 0.25})
        self.bot_wrote(key, tup)
        self.trace.append(f"bot_new_trade {key[1]} in {self.routed}")

    def bot_closes_trade(self, pick: int, conflict: bool) -> None:
        others = set(self.pending)
        keys = self.candidates("trades", self.routed, conflict, others)
        if not keys:
            return
        key = self.choose(keys, pick, conflict, others)
        self.n += 1
        self.bot_wrote(key, self.update(self.routed, key, {"status": "closed", "pnl": self.n + 0.5}))
        self.trace.append(f"bot_closes_trade {key[1]} in {self.routed}")

    def bot_chain(self, new: bool, pick: int, conflict: bool) -> None:
        if not self.has_plugin_id(self.routed, "reentry_chains"):
            return  # a legacy shared file: a chain is the plugin's only through a trade of it
        keys = self.candidates("reentry_chains", self.routed, conflict, set(self.pending))
        self.n += 1
        if new or not keys:
            key = ("reentry_chains", self.fresh("C"))
            tup = self.insert(self.routed, "reentry_chains", {"chain_id": key[1], "symbol": "EURUSD",
                                                              "status": "active", "total_profit": 0.0})
        else:
            key = self.choose(keys, pick, conflict, set(self.pending))
            tup = self.update(self.routed, key, {"total_profit": self.n + 0.75, "status": "completed"})
        self.bot_wrote(key, tup)
        self.trace.append(f"bot_chain {key[1]} in {self.routed}")

    def upsert_state(self, side: str, name: str) -> tuple[Key, tuple[Any, ...]]:
        key = ("system_state", name)
        self.n += 1
        if len(self.read(side).find("system_state", name)) == 1:
            return key, self.update(side, key, {"value": str(self.n)})
        return key, self.insert(side, "system_state", {"key": name, "value": str(self.n)})

    def bot_state(self, name: str, conflict: bool) -> None:
        if not self.has_plugin_id(self.routed, "system_state"):
            return
        key = ("system_state", name)
        if key in self.pending and not conflict:
            return
        if self.routed == "shared" and key in self.keyed and not self.read("shared").find("system_state", name):
            return  # pruned from the shared file while isolated; not a case of the bot routed here
        key, tup = self.upsert_state(self.routed, name)
        self.bot_wrote(key, tup)
        self.trace.append(f"bot_state {name} in {self.routed}")

    # --- an old bot, still writing into the shared file while the plugin is isolated ----------------------------

    def old_wrote(self, key: Key, tup: tuple[Any, ...]) -> None:
        self.pending[key] = tup
        self.dirty_sh.add(key)

    def old_bot_new_trade(self, closed: bool) -> None:
        key = ("trades", self.fresh("O"))
        self.old_wrote(key, self.insert("shared", "trades", {
            "trade_id": key[1], "symbol": "GBPUSD", "logic_type": "LOGIC1", "status": "closed" if closed else "open",
            "pnl": -1.5 if closed else None}))
        self.trace.append(f"old_bot_new_trade {key[1]}")

    def old_bot_closes_trade(self, pick: int, conflict: bool) -> None:
        keys = self.candidates("trades", "shared", conflict, self.dirty_iso)
        if not keys:
            return
        key = self.choose(keys, pick, conflict, self.dirty_iso)
        self.n += 1
        self.old_wrote(key, self.update("shared", key, {"status": "closed", "pnl": -(self.n + 0.5)}))
        self.trace.append(f"old_bot_closes_trade {key[1]}")

    def old_bot_state(self, name: str, conflict: bool) -> None:
        if not self.has_plugin_id("shared", "system_state"):
            return
        key = ("system_state", name)
        if key in self.dirty_iso and not conflict:
            return
        key, tup = self.upsert_state("shared", name)
        self.old_wrote(key, tup)
        self.trace.append(f"old_bot_state {name}")

    # --- synchronisations -------------------------------------------------------------------------------------------

    def sync(self, argv: list[str], to: str) -> None:
        """Run a split/merge/flip that synchronises towards `to`; check refusals, then fold its effect in the model."""
        conflicts = self.dirty_iso & self.dirty_sh
        before_iso, before_sh = self.read("isolated"), self.read("shared")
        code, out = command(*argv)
        winners: dict[Key, str] = {}
        if conflicts:
            assert code == 1, f"{argv}: {sorted(conflicts)} changed on both sides, not refused:\n{out}"
            named = [k for k in conflicts if f"'{k[1]}'" in out]
            assert len(named) >= min(len(conflicts), 5), f"{argv}: conflicts {sorted(conflicts)} not named:\n{out}"
            for side, before in (("isolated", before_iso), ("shared", before_sh)):
                after = self.read(side)
                assert all(after.counter(t.name) == before.counter(t.name) for t in TABLES), \
                    f"{argv}: refused, yet the plugin's rows in the {side} place changed"
            prefer = "source" if self.n % 2 else "destination"
            code, out = command(*argv, "--prefer", prefer)
            # split's source is the shared file (the old bot's side), merge's the isolated file (the bot's side)
            shared_wins = (prefer == "source") == (to == "isolated")
            winners = {k: "shared" if shared_wins else "isolated" for k in conflicts}
            self.trace.append(f"  refused, then --prefer {prefer}")
        assert code == 0, f"{argv} exited {code}:\n{out}"
        for key, tup in self.pending.items():
            if winners.get(key) != "isolated":
                self.keyed[key] = tup
        if to == "isolated":
            # the shared file's changes are carried over; a kept isolated write stays one (unless the shared won)
            self.dirty_iso -= {k for k, side in winners.items() if side == "shared"}
            self.dirty_sh = set()
        else:
            self.dirty_sh -= {k for k, side in winners.items() if side == "isolated"}
            self.dirty_iso = set()
        self.pending = {}
        self.restorable = None
        self.check_place()
        self.check_stats()
        self.check_verify(after_sync=True)

    @rule()
    def split(self) -> None:
        if self.routed == "shared":
            self.project.set_use_shared(PLUGIN, False)  # by hand
            self.routed = "isolated"
        self.trace.append("split")
        self.sync(["split", "--config", str(self.project.configs), "--plugin", PLUGIN, "-q"], "isolated")

    @precondition(lambda self: self.iso.exists())
    @rule()
    def merge(self) -> None:
        if not self.migrated:
            self.project.set_use_shared(PLUGIN, True)  # by hand, as below
            self.refused_unmigrated(["merge", "--config", str(self.project.configs), "--plugin", PLUGIN, "-q"])
            self.project.set_use_shared(PLUGIN, self.routed == "shared")
            return
        if self.routed == "isolated":
            self.project.set_use_shared(PLUGIN, True)  # by hand
            self.routed = "shared"
        self.trace.append("merge")
        self.sync(["merge", "--config", str(self.project.configs), "--plugin", PLUGIN, "-q"], "shared")

    @rule(to=st.sampled_from(["isolated", "shared"]), prune=st.booleans())
    def flip(self, to: str, prune: bool) -> None:
        if to == "shared" and not self.iso.exists():
            to = "isolated"
        if to == "shared" and not self.migrated:
            config = self.project.plugin_config_path(PLUGIN).read_text()
            self.refused_unmigrated(["flip", PLUGIN, "--config", str(self.project.configs), "--to", to, "-q"])
            assert self.project.plugin_config_path(PLUGIN).read_text() == config
            return
        self.trace.append(f"flip --to {to}{' --prune' if prune else ''}")
        backups = set(self.backups())
        self.routed = to
        self.sync(["flip", PLUGIN, "--config", str(self.project.configs), "--to", to, "-q",
                   *(["--prune"] if prune else [])], to)
        assert json.loads(self.project.plugin_config_path(PLUGIN).read_text())["database"]["use_shared"] == \
            (to == "shared")
        if prune:
            left = "shared" if to == "isolated" else "isolated"
            name = self.path(left).name
            made = sorted(p for p in set(self.backups()) - backups if p.name.startswith(name) and "pre-prune" in p.name)
            if made:
                self.restorable = (left, made[-1])

    def refused_unmigrated(self, argv: list[str]) -> None:
        """Onto a never-migrated shared file: exit 2 saying to migrate first, nothing of the plugin written."""
        self.trace.append(f"{argv[0]} refused: never migrated")
        before = {side: self.read(side) for side in ("isolated", "shared")}
        code, out = command(*argv)
        assert code == 2 and "never migrated" in out and "zepix-store migrate" in out, (argv, code, out)
        for side, rows in before.items():
            after = self.read(side)
            assert all(after.counter(t.name) == rows.counter(t.name) for t in TABLES), (argv, side)

    @precondition(lambda self: self.restorable is not None)
    @rule()
    def restore(self) -> None:
        """Restore the pre-prune backup of the place the plugin just left: its rows come back as synchronised."""
        assert self.restorable is not None
        side, backup = self.restorable
        target = [] if side == "shared" else ["--target", str(self.iso)]  # --plugin: the file it is routed to
        code, out = command("restore", str(backup), "--config", str(self.project.configs), "--force", "-q", *target)
        assert code == 0, out
        self.trace.append(f"restore {backup.name}")
        if side == "shared":  # the old bot's writes since the backup are gone with the file it wrote them in
            self.pending = {}
            self.dirty_sh = set()
        self.restorable = None
        self.check_verify(after_sync=False)

    def backups(self) -> list[Path]:
        folder = self.project.data / "backups"
        return sorted(folder.iterdir()) if folder.exists() else []

    # --- checks ---------------------------------------------------------------------------------------------------

    @invariant()
    def routed_place_holds_the_model(self) -> None:
        if not self.rest:
            return
        self.check_place()

    def check_place(self) -> None:
        got = self.read(self.routed)
        for t in TABLES:
            want, have = self.expected(t.name), got.counter(t.name)
            assert have == want, (f"{t.name} in the {self.routed} place: missing {list((want - have).elements())[:5]}, "
                                  f"extra or stale {list((have - want).elements())[:5]}\nsteps: {self.trace}")

    def check_stats(self) -> None:
        code, out = command("stats", "--config", str(self.project.configs), "--plugin", PLUGIN, "--json", "-q")
        assert code == 0, out
        doc = json.loads(out[:out.rindex("}") + 1])
        plugins = doc["plugins"]
        got = plugins[0] if isinstance(plugins, list) else plugins[PLUGIN]
        conn = sqlite3.connect(":memory:")
        try:
            conn.execute("CREATE TABLE t (status, pnl)")
            idx = content_columns(TABLE_BY_NAME["trades"])
            s, p = idx.index("status"), idx.index("pnl")
            conn.executemany("INSERT INTO t VALUES (?, ?)", [(r[s], r[p]) for r in self.expected("trades").elements()])
            total, pnl = conn.execute(f"SELECT count(*), total(CASE WHEN {NUMERIC_PNL} THEN pnl END) FROM t "
                                      "WHERE status = 'closed'").fetchone()
        finally:
            conn.close()
        assert (got["total_trades"], round(got["total_pnl"], 2)) == (total, round(pnl, 2)), \
            f"stats read from the {self.routed} place: {got}, model: {total} trades, {pnl}\nsteps: {self.trace}"

    def check_verify(self, after_sync: bool) -> None:
        code, out = command("verify", "--config", str(self.project.configs), "-q")
        if code == 0:
            return
        named = [k for k in self.pending if f"'{k[1]}'" in out]
        assert code == 1 and named and not after_sync, \
            f"verify exited {code} with pending {sorted(self.pending)}:\n{out[-3000:]}\nsteps: {self.trace}"

    @precondition(lambda self: self.routed == "isolated" and bool(self.pending))
    @rule()
    def verify_names_pending_writes(self) -> None:
        self.check_verify(after_sync=False)


@pytest.mark.slow
def test_any_sequence_of_moves_keeps_every_row_once_at_its_latest_state() -> None:
    run_state_machine_as_test(MovePlugin, settings=settings(
        max_examples=scaled(10, 25, 200), stateful_step_count=8, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))


def test_an_old_bot_upsert_giving_a_keyed_row_a_new_rowid_is_carried_over(tmp_path: Path) -> None:
    project = Project(tmp_path / "p")
    copy_database(template(), project.shared_db)
    store = project.configs / "store.yaml"
    store.write_text(store.read_text().replace("LOGIC1: v3-logic-01-5min", f"LOGIC1: {PLUGIN}"))
    project.set_all_shared(True)
    config = ["--config", str(project.configs), "-q"]
    assert command("migrate", *config)[0] == 0

    def sql(path: Path, statement: str) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            return conn.execute(statement, (PLUGIN,)).fetchall()
        finally:
            conn.close()

    sql(project.shared_db, "INSERT INTO system_state (key, value, plugin_id) VALUES ('risk_mode', 'a', ?)")
    assert command("flip", PLUGIN, "--to", "isolated", *config)[0] == 0
    # An old bot still routed to the shared file upserts the key: the row is replaced, under a new rowid.
    sql(project.shared_db, "INSERT OR REPLACE INTO system_state (key, value, plugin_id) VALUES ('risk_mode', 'b', ?)")
    # Only the shared side changed since the last sync: an update, as for a row changed in place.
    code, out = command("split", "--plugin", PLUGIN, *config)
    assert code == 0, out
    iso = project.isolated_db(PLUGIN)
    assert sql(iso, "SELECT value FROM system_state WHERE key = 'risk_mode' AND plugin_id = ?") == [("b",)]
    code, out = command("flip", PLUGIN, "--to", "shared", *config)
    assert code == 0, out
