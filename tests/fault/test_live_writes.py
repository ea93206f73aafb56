"""A1: the bot's writers are SIGKILLed at random; every acknowledged transaction survives, whole.

A writer process runs the store API exactly as the bot does: 3 plugins x 8 asyncio tasks on the shared file.
Each transaction is ONE library call that writes two rows (`save_trades` of a trade and its re-entry child: the
API has no call that writes a trade plus an event row atomically) and the writer prints the trade id only
after the call returned. The parent kills it 50-400 ms after it is ready, checks the files, and starts the
next writer on the hot WAL the dead one left.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
from pathlib import Path

import pytest

from tests.helpers import Project, child_env, kill_at_random, run_python, scaled

PLUGINS = ("v3-logic-01-5min", "v6-logic-01-1min", "v6-logic-02-5min")
TASKS = 8

WRITER = """
import asyncio, sys
from zepix_store import Store, Trade

configs, run, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
plugins = sys.argv[4:]

async def writer(db, plugin, task):
    i = 0
    while not limit or i < limit:
        base = f"{plugin}:{run}:{task}:{i}"
        await db.save_trades([
            Trade(trade_id=base, symbol="EURUSD", status="closed", pnl=1.5, logic_type="LOGIC1"),
            Trade(trade_id=base + "/child", symbol="EURUSD", status="open", chain_id=base, is_re_entry=True),
        ])
        print(base, flush=True)  # the acknowledgement: only after the call returned
        i += 1

async def main():
    async with Store.open(configs) as store:
        handles = {p: store.for_plugin(p) for p in plugins}
        await handles[plugins[0]].get_statistics()  # opens the file, recovering a hot WAL, before "ready"
        print("ready", flush=True)
        await asyncio.gather(*(writer(h, p, t) for p, h in handles.items() for t in range(TASKS)))

asyncio.run(main())
""".replace("TASKS", str(TASKS))


def acked_ids(stdout: str) -> set[str]:
    """Complete acknowledgement lines (a line cut by the kill has no newline and was never acked)."""
    lines = stdout.split("\n")[:-1]
    return {line for line in lines if line and line != "ready"}


def check_files(db: Path, acked: set[str]) -> dict[str, int]:
    """The A1 invariants on the file the killed writer left; returns counts for the figures."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)  # read-only: closing it never checkpoints the WAL
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        owners = {r[0] for r in conn.execute("SELECT DISTINCT plugin_id FROM trades")}
        assert owners <= set(PLUGINS), f"rows under foreign plugin ids: {owners - set(PLUGINS)}"
        foreign = conn.execute("SELECT count(*) FROM trades WHERE substr(trade_id, 1, length(plugin_id) + 1) "
                               "!= plugin_id || ':'").fetchone()[0]
        assert foreign == 0, f"{foreign} rows carry another plugin's id"
        parents = {r[0] for r in conn.execute("SELECT trade_id FROM trades WHERE trade_id NOT LIKE '%/child'")}
        children = {r[0][: -len("/child")] for r in conn.execute(
            "SELECT trade_id FROM trades WHERE trade_id LIKE '%/child'")}
        dupes = conn.execute("SELECT count(*) - count(DISTINCT plugin_id || trade_id) FROM trades").fetchone()[0]
    finally:
        conn.close()
    assert parents == children, f"half transactions: {sorted(parents ^ children)[:5]}"
    assert dupes == 0
    lost = acked - parents
    assert not lost, f"{len(lost)} acknowledged transactions lost, e.g. {sorted(lost)[:3]}"
    return {"committed": len(parents), "unacked": len(parents - acked)}


def inodes(db: Path) -> dict[str, int]:
    found = {}
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            found[suffix] = os.stat(f"{db}{suffix}").st_ino
    return found


@pytest.mark.slow
def test_sigkilled_writers_lose_no_acknowledged_transaction(project: Project, tmp_path: Path, figures) -> None:
    for plugin in PLUGINS:
        project.set_use_shared(plugin, True)
    db = project.shared_db
    n = scaled(10, 50, 500)
    cmd = [sys.executable, "-c", WRITER, str(project.configs), "0", "0", *PLUGINS]
    # The file and its tables made first, by a writer that ends by itself: a kill, however early it lands on a
    # loaded machine, then hits a writer of an existing file (reads create no file, so before its first write
    # a killed writer would have left nothing to check).
    warm = run_python(WRITER, project.configs, "warm", 1, *PLUGINS, timeout=60, env=child_env())
    assert warm.rc == 0, warm.stderr
    acked: set[str] = acked_ids(warm.stdout)
    survived, hot_wal = 0, 0
    left: dict[str, int] = {}
    for run_no, kill in enumerate(kill_at_random(cmd, n, 0.05, 0.4, seed=1, workdir=tmp_path)):
        assert kill.killed, f"writer exited by itself (rc {kill.returncode}): {kill.stderr[-2000:]}"
        assert kill.stdout.startswith("ready\n"), kill.stderr[-2000:]
        # The next writer reused the -wal/-shm the previous one left: nobody deleted and recreated them.
        now = inodes(db)
        for suffix, ino in left.items():
            assert now.get(suffix) == ino, f"{suffix} was deleted between kill {run_no - 1} and {run_no}"
        hot_wal += bool(left)
        acked |= acked_ids(kill.stdout)
        counts = check_files(db, acked)
        left = inodes(db)
        assert "-wal" in left, "a killed writer must leave its -wal (else the test proves nothing)"
        survived += 1
        cmd[4] = str(run_no + 1)  # trade ids stay unique across runs

    final = run_python(WRITER, project.configs, "final", 5, *PLUGINS, timeout=60, env=child_env())
    assert final.rc == 0, final.stderr
    acked |= acked_ids(final.stdout)
    assert len(acked_ids(final.stdout)) == len(PLUGINS) * TASKS * 5
    counts = check_files(db, acked)
    figures("A1 live writes", f"kills survived {survived}/{n} (hot WAL reopened {hot_wal}); acked txns "
            f"{len(acked):,}, lost 0; committed-unacked {counts['unacked']}; integrity failures 0; "
            f"-wal/-shm deleted by the library 0; final committed {counts['committed']:,}")
