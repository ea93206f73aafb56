"""Two synchronisations of one plugin at once: the second waits for the first, every row ends there once.

Without the per-plugin lock both plan before either commits and every new row is copied twice (exit 0, verify
passing, stats inflated). Each round races two real processes of the same command, with and without an old bot
writing the source side, then carries the bot's late rows with one more sync and compares every table of the
plugin, row for row with storage classes, between the source and the destination.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import (
    REPO,
    Project,
    child_env,
    cli_ok,
    copy_database,
    legacy_template,
    query,
    run_cli,
    scaled,
    typed,
)
from zepix_store.compat import TradeDatabase
from zepix_store.plugin_lock import LOCK_DIR, plugin_locks
from zepix_store.schema import TABLES

pytestmark = pytest.mark.slow

P = "v6-logic-01-1min"
OTHER = "v6-logic-02-5min"
# One round of each race and each writer mode by default: the plugin lock makes the two racers take turns, so
# a round shows whether the second sync repeats rows of the first; more rounds are more chances of other timings.
ROUNDS = int(os.environ.get("ZEPIX_SYNC_RACE_ROUNDS", scaled(1, 3, 20)))
# command -> (argv after the command name, whether the plugin's rows flow shared -> isolated)
RACES = {
    "split": (["split", "--plugin", P], True),
    "flip-to-isolated": (["flip", P, "--to", "isolated"], True),
    "merge": (["merge", "--plugin", P], False),
    "flip-to-shared": (["flip", P, "--to", "shared"], False),
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return legacy_template(tmp_path_factory, trades=150, seed=3)


def prepare(project: Project, template: Path, race: str) -> None:
    """The plugin's state before the race: its rows in the source place, the config as the command needs it."""
    copy_database(template, project.shared_db)
    store = project.configs / "store.yaml"
    store.write_text(store.read_text().replace("LOGIC1: v3-logic-01-5min", f"LOGIC1: {P}"))
    project.set_all_shared(True)
    cli_ok("migrate", project)
    if race == "split":
        project.set_use_shared(P, False)
    elif race in ("merge", "flip-to-shared"):
        cli_ok("flip", project, P, "--to", "isolated")
        with TradeDatabase(P, project.configs) as db:  # the bot's rows since the flip: only in the isolated file
            for i in range(200):
                db.save_trade({"trade_id": f"B{i}", "status": "closed", "pnl": i / 7, "symbol": "EURUSD"})
        if race == "merge":
            project.set_use_shared(P, True)  # flipped back by hand, as the merge command expects


def old_bot(path: Path, stop: threading.Event, acked: list[str]) -> None:
    """Raw SQL into the source place every few ms, as an old bot would; `acked` holds every committed trade_id."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        i = 0
        while not stop.is_set():
            trade_id = f"W{i}"
            conn.execute("INSERT INTO trades (trade_id, status, pnl, plugin_id) VALUES (?, 'closed', ?, ?)",
                         (trade_id, i / 3, P))
            acked.append(trade_id)
            i += 1
            time.sleep(0.005)
    finally:
        conn.close()


def routed_shared(project: Project) -> bool:
    return bool(json.loads(project.plugin_config_path(P).read_text())["database"]["use_shared"])


def plugin_rows(path: Path) -> dict[str, Counter[tuple[tuple[str, str], ...]]]:
    """Every table's rows of the plugin as a multiset of type-tagged values (row ids left out)."""
    out: dict[str, Counter[tuple[tuple[str, str], ...]]] = {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for table in TABLES:
            cols = [c.name for c in table.columns if not c.decl.upper().startswith("INTEGER PRIMARY KEY")]
            rows = conn.execute(f"SELECT {', '.join(cols)} FROM {table.name} WHERE plugin_id = ?", (P,))
            out[table.name] = Counter(tuple(typed(v) for v in row) for row in rows)
    finally:
        conn.close()
    return out


def race_once(project: Project, template: Path, race: str, writer: bool) -> None:
    prepare(project, template, race)
    argv, to_isolated = RACES[race]
    source = project.shared_db if to_isolated else project.isolated_db(P)
    stop, acked = threading.Event(), []
    bot = threading.Thread(target=old_bot, args=(source, stop, acked))
    if writer:
        bot.start()
    cmd = [sys.executable, "-m", f"zepix_store.{argv[0]}", *argv[1:], "--config", str(project.configs),
           "--lock-wait", "120"]
    procs = [subprocess.Popen(cmd, cwd=REPO, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    if writer:
        stop.set()
        bot.join(30)
    for proc, (_out, err) in zip(procs, outs):
        # A split or merge beside an old bot that never pauses may give up: refused whole, never half-applied. A flip
        # does not: its last round names what such a bot keeps writing, and the next sync carries it over.
        assert proc.returncode == 0 or writer and argv[0] != "flip" and proc.returncode == 1 \
            and "still changing" in err, err[-1500:]
    if argv[0] == "flip" and project.isolated_db(P).exists() and routed_shared(project) == to_isolated:
        cli_ok(argv[0], project, *argv[1:])  # both racers gave up: the flip once more, the bot now quiet
    # One more sync carries what the bot wrote after the race's last round.
    cli_ok("split" if to_isolated else "merge", project, "--plugin", P)
    destination = project.isolated_db(P) if to_isolated else project.shared_db
    got, want = plugin_rows(destination), plugin_rows(source)
    assert {t: sum(c.values()) for t, c in got.items()} == {t: sum(c.values()) for t, c in want.items()}
    assert got == want
    if writer:
        assert query(destination, "SELECT count(*) FROM trades WHERE plugin_id = ? AND trade_id LIKE 'W%'",
                     (P,)) == [(len(acked),)]
    assert sync_pairs_check(project) == "ok"


def sync_pairs_check(project: Project) -> str:
    """The status of verify's sync-pairs check of the plugin (verify may warn or fail for other reasons)."""
    done = run_cli("verify", "--json", config=project)
    check = {c["name"]: c for c in json.loads(done.stdout)["checks"]}[f"sync-pairs:{P}"]
    return str(check["status"]) if check["status"] == "ok" else f"{check['status']}: {check['detail']}"


@pytest.mark.parametrize("side", ["isolated", "shared"])
def test_verify_fails_on_a_row_a_synchronisation_copied_twice(project: Project, template: Path, side: str) -> None:
    prepare(project, template, "merge")
    cli_ok("merge", project, "--plugin", P)
    assert sync_pairs_check(project) == "ok"
    path = project.isolated_db(P) if side == "isolated" else project.shared_db
    cols = [c.name for c in TABLES[0].columns if c.name != "id"]
    conn = sqlite3.connect(path, isolation_level=None)
    try:  # what a second, unlocked sync did: the same row once more, unpaired
        conn.execute(f"INSERT INTO trades ({', '.join(cols)}, plugin_id) SELECT {', '.join(cols)}, plugin_id "
                     "FROM trades WHERE plugin_id = ? AND trade_id = 'B7'", (P,))
    finally:
        conn.close()
    status = sync_pairs_check(project)
    assert status.startswith("FAIL: "), status
    assert f"trades: 1 row in the {side} file duplicates a synchronised row value for value (trade_id='B7'" in status
    assert run_cli("verify", config=project).rc == 1


@pytest.mark.parametrize("writer", [False, True], ids=["quiet", "old-bot-writing"])
@pytest.mark.parametrize("race", sorted(RACES))
def test_two_syncs_of_one_plugin_at_once_leave_every_row_once(tmp_path: Path, template: Path, race: str,
                                                              writer: bool) -> None:
    for n in range(ROUNDS):
        race_once(Project(tmp_path / f"round{n}"), template, race, writer)


def test_a_held_plugin_refuses_after_the_wait_naming_the_holder_and_other_plugins_go_on(
        project: Project, template: Path) -> None:
    prepare(project, template, "split")
    project.set_use_shared(OTHER, False)
    with plugin_locks(project.data, [P], "test holder"):
        started = time.monotonic()
        done = run_cli("split", "--plugin", P, "--lock-wait", "0.5", config=project, process=True)
        waited = time.monotonic() - started
        assert done.rc == 4, done.stderr
        assert f"plugin {P} is being synchronised by pid {os.getpid()} (test holder)" in done.stderr
        assert "nothing was changed" in done.stderr
        assert waited >= 0.5
        assert not project.isolated_db(P).exists()
        cli_ok("split", project, "--plugin", OTHER)  # another plugin's lock is its own
        assert (project.data / LOCK_DIR / f"{P}.lock").stat().st_mode & 0o777 == 0o600
    cli_ok("split", project, "--plugin", P)
    assert not (project.data / LOCK_DIR).exists()  # nothing outlives the commands


def test_a_holder_killed_with_sigkill_releases_the_plugin(project: Project, template: Path) -> None:
    prepare(project, template, "split")
    code = ("import sys, time; from pathlib import Path; from zepix_store.plugin_lock import plugin_locks\n"
            "with plugin_locks(Path(sys.argv[1]), [sys.argv[2]], 'holder'):\n"
            "    print('held', flush=True); time.sleep(600)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(project.data), P], cwd=REPO, env=child_env(),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert run_cli("split", "--plugin", P, "--lock-wait", "0.2", config=project, process=True).rc == 4
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        cli_ok("split", project, "--plugin", P)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
        assert holder.stdout is not None
        holder.stdout.close()
    assert not (project.data / LOCK_DIR).exists()  # the next holder took the dead one's file and removed it
