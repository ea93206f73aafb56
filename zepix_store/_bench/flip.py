"""bench: `flip` of one plugin with N trades while 8 other plugins write (the bot's side of a live move).

A writer process runs 8 plugins (4 in the shared file, 4 in files of their own), each an asyncio task saving one
trade at a time through the library with a 10 ms pause. Its p99 write latency is measured for a few seconds
without a move, then during `zepix-store flip PLUGIN --to isolated` of the big plugin (a child process, as an
operator runs it); flip reports the longest write transaction it held on a file the bot uses.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .core import Figure, Say, not_measured, python_module, ratio_figure, write_project

__all__ = ['HOLD_GOAL_MS', 'big_plugin_history', 'measure_flip', 'MOVED', 'P99_GOAL', 'WRITER', 'WRITERS']

MOVED = "big-plugin"
WRITERS = {f"writer-{i}": (None if i < 4 else f"writer_{i}.db") for i in range(8)}
HOLD_GOAL_MS = 200.0
P99_GOAL = 3.0

WRITER = """
import asyncio, json, sys, time
from pathlib import Path
from zepix_store import Store, Trade

configs, stop, plugins = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]

async def main():
    lat = []
    async with Store.open(configs) as store:
        handles = [store.for_plugin(p) for p in plugins]
        for h in handles:
            await h.get_statistics()
        print("ready", flush=True)
        async def one(p, h):
            i = 0
            while not stop.exists():
                t = time.perf_counter()
                await h.save_trade(Trade(trade_id=f"{p}:{i}", symbol="EURUSD", status="closed", pnl=1.0))
                lat.append(time.perf_counter() - t)
                i += 1
                await asyncio.sleep(0.01)
        await asyncio.gather(*(one(p, h) for p, h in zip(plugins, handles)))
    lat.sort()
    print(json.dumps({"writes": len(lat), "p99_ms": 1000 * lat[int(len(lat) * 0.99)] if lat else 0.0}), flush=True)

asyncio.run(main())
"""


def big_plugin_history(shared: Path, trades: int) -> None:
    """A legacy shared file holding `trades` closed LOGIC1 trades (the big plugin's), in the legacy schema."""
    from .._sample.legacy import build_legacy_db

    build_legacy_db(shared, trades=100, seed=5)
    conn = sqlite3.connect(shared)
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
        "INSERT INTO trades (trade_id, symbol, strategy, status, pnl, open_time, close_time) "
        "SELECT 'BIG-' || i, 'EURUSD', 'LOGIC1', 'closed', (i % 97) - 48.5, "
        "datetime('2024-01-01', '+' || (i % 500) || ' minutes'), datetime('2024-01-01', '+' || (i % 500 + 5) "
        "|| ' minutes') FROM n", (trades,))
    conn.commit()
    conn.close()


def _writer_p99(configs: Path, stop: Path, during: list[str] | None,
                seconds: float) -> tuple[float, dict[str, Any]]:
    """Run the writer; stop it after `seconds`, or once the command `during` has finished."""
    stop.unlink(missing_ok=True)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(configs), str(stop), *WRITERS],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    command: dict[str, Any] = {}
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        if during is None:
            time.sleep(seconds)
        else:
            done = subprocess.run(during, capture_output=True, text=True, check=False)
            command = json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr[-2000:]}
            time.sleep(0.5)
    finally:
        stop.touch()
        out, err = writer.communicate(timeout=300)
    if writer.returncode != 0:
        raise RuntimeError(f"bench writer failed: {err[-2000:]}")
    return float(json.loads(out.strip().splitlines()[-1])["p99_ms"]), command


def measure_flip(scratch: Path, trades: int, say: Say) -> list[Figure]:
    """SPEC's flip figures: the longest write transaction held, and the writers' p99 with / without the flip."""
    try:
        return _measure(scratch, trades, say)
    except (subprocess.CalledProcessError, RuntimeError, AssertionError) as exc:
        reason = f"the flip bench could not run: {exc}"
        return [not_measured("flip.longest_write_hold", "ms", "ratio <= 1", reason),
                not_measured("flip.bot_p99_latency", "ms", f"ratio <= {P99_GOAL:.3g}", reason)]


def _measure(scratch: Path, trades: int, say: Say) -> list[Figure]:
    root = scratch / "flip"
    configs = write_project(root, {MOVED: "big_plugin.db", **WRITERS}, {"LOGIC1": MOVED})
    for folder in (configs / "plugins").iterdir():  # the big plugin starts in the shared file
        doc = json.loads((folder / "config.json").read_text())
        if doc["plugin_id"] == MOVED:
            doc["database"]["use_shared"] = True
            (folder / "config.json").write_text(json.dumps(doc, indent=2))
    say(f"flip: a shared file with a {trades:,}-trade plugin, migrated as the bot's would be")
    big_plugin_history(root / "data" / "trading_bot.db", trades)
    subprocess.run(python_module("zepix_store.migrate", "--config", str(configs), "-q"), check=True,
                   capture_output=True)
    stop = root / "stop"
    say("flip: 8 plugins writing, without a move")
    quiet, _ = _writer_p99(configs, stop, None, 5.0)
    say(f"flip: 8 plugins writing while {MOVED} flips to isolated")
    during, report = _writer_p99(configs, stop, python_module(
        "zepix_store.flip", MOVED, "--to", "isolated", "--config", str(configs), "--json", "-q"), 0)
    hold = report.get("longest_hold_ms")
    if hold is None:
        held = not_measured("flip.longest_write_hold", "ms", "ratio <= 1", f"flip failed: {report.get('error')}")
    else:  # an absolute goal: its baseline is the budget itself
        held = ratio_figure("flip.longest_write_hold", float(hold), HOLD_GOAL_MS, "ms", at_most=1.0,
                            detail={"trades": trades, "baseline": "the 200 ms budget of a held write transaction"})
    return [held, ratio_figure("flip.bot_p99_latency", during, quiet, "ms", at_most=P99_GOAL,
                               detail={"trades": trades})]
