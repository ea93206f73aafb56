"""The bot keeps writing the plugin that moves: a separate process, through the compat facade, while flips with
and without --prune and split --prune run in a loop. Each acknowledged trade (saved open, then closed: one row)
and the latest risk flag must end once where the plugin is routed, and its figures equal the acknowledged ones.

The writer's facade follows each flip (route_follow.py), and a split of the plugin while it writes the source may
leave its late writes in the place the plugin is no longer synchronised from; the next synchronisation in either
direction must carry them, never drop or double them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, Project, child_env, copy_database, query, scaled
from zepix_store.compat import TradeDatabase
from zepix_store.legacy_data import build_legacy_db

PLUGIN = "v3-logic-02-15min"

WRITER = """
import sys, time
from pathlib import Path
from zepix_store.compat import TradeDatabase

configs, stop, tag = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
db = TradeDatabase(sys.argv[4], configs)
print("ready", flush=True)
i = 0
while not stop.exists():
    tid = f"{tag}{i}"
    db.save_trade({"trade_id": tid, "symbol": "EURUSD", "status": "open", "pnl": None, "strategy": "LOGIC2"})
    db.save_trade({"trade_id": tid, "symbol": "EURUSD", "status": "closed", "pnl": 1.0, "strategy": "LOGIC2",
                   "close_time": "2026-01-20T10:00:00.000001"})
    db.set_system_state("zq_counter", i)
    print(tid, flush=True)
    i += 1
    time.sleep(0.03)
db.close()
"""


def cli(project: Project, *args: str, busy_ok: bool = False) -> bool:
    wait = ["--lock-wait", "60"] if args[0] in ("flip", "split") else []
    done = subprocess.run([sys.executable, "-m", "zepix_store.cli", *args, "--config", str(project.configs), "-q",
                           *wait], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=child_env(), check=False)
    if busy_ok and done.returncode == 1 and "still changing after" in done.stderr:
        return False  # a bot writing the source without pause: refused by name, nothing half-done (checked below)
    assert done.returncode == 0, (args, done.stdout[-3000:] + done.stderr[-3000:])
    return True


@pytest.mark.slow
def test_a_bot_writing_the_moving_plugin_loses_and_doubles_nothing(project: Project, tmp_path: Path) -> None:
    build_legacy_db(tmp_path / "legacy.db", trades=60, seed=3)
    copy_database(tmp_path / "legacy.db", project.shared_db)
    project.set_all_shared(True)
    cli(project, "migrate")
    moves = [("flip", PLUGIN, "--to", "isolated"), ("flip", PLUGIN, "--to", "shared", "--prune"),
             ("split", "--plugin", PLUGIN, "--prune"), ("flip", PLUGIN, "--to", "isolated", "--prune"),
             ("flip", PLUGIN, "--to", "shared")]
    acked: list[str] = []
    done = 0
    for rnd in range(scaled(2, 2, 6)):
        stop = tmp_path / f"stop{rnd}"
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(project.configs), str(stop), f"ZQ{rnd}-",
                                   PLUGIN], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=child_env())
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        for move in moves:
            done += cli(project, *move, busy_ok=True)
        stop.touch()
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err[-3000:]
        acked += out.split()
    assert done >= len(moves), done  # most moves went through while the writer wrote
    # The writer is gone: one more carry-over run finds what it wrote in the old place.
    cli(project, "flip", PLUGIN, "--to", "shared")
    cli(project, "verify")
    doc = json.loads(project.plugin_config_path(PLUGIN).read_text())
    routed = project.shared_db if doc["database"]["use_shared"] else project.isolated_db(PLUGIN)
    got = query(routed, "SELECT trade_id, status, count(*) FROM trades WHERE plugin_id = ? AND trade_id LIKE 'ZQ%' "
                       "GROUP BY trade_id, status", (PLUGIN,))
    counts = {(t, s): n for t, s, n in got}
    want = {(t, "closed"): 1 for t in acked}  # the facade's close save updates the open row
    assert {k: v for k, v in counts.items() if want.get(k) != v} == {}
    missing = sorted(set(want) - set(counts))
    lost = [(str(f), query(f, "SELECT plugin_id, trade_id, status FROM trades WHERE trade_id = ?", (missing[0][0],)))
            for f in (project.shared_db, project.isolated_db(PLUGIN))] if missing else []
    assert (len(missing), missing[:6], lost) == (0, [], [])
    with TradeDatabase(PLUGIN, project.configs) as db:  # no closed trade reads as an open position
        assert [t["trade_id"] for t in db.get_open_trades() if str(t["trade_id"]).startswith("ZQ")] == []
        assert db.get_system_state("zq_counter") is not None
    assert len(query(routed, "SELECT 1 FROM system_state WHERE plugin_id = ? AND key = 'zq_counter'", (PLUGIN,))) == 1
