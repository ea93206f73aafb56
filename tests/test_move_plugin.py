"""`await store.move_plugin(id, to=...)` in a running process: that plugin's calls wait, the others go on, and
every acknowledged write ends once in the plugin's new place."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import Project
from zepix_store import Store, Trade

MOVED = "v6-logic-01-1min"
OTHERS = ("v3-logic-01-5min", "v6-logic-02-5min", "v3-logic-02-15min")
TASKS = 8


def rows(path: Path, plugin: str) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT trade_id FROM trades WHERE plugin_id = ?", (plugin,))]
    finally:
        conn.close()


async def _writers_during(store: Store, moves: list[str]) -> dict[str, list[str]]:
    acked: dict[str, list[str]] = {p: [] for p in (MOVED, *OTHERS)}
    stop = asyncio.Event()

    async def writer(task: int) -> None:
        plugin = MOVED if task % 2 == 0 else OTHERS[task % len(OTHERS)]
        handle, i = store.for_plugin(plugin), 0
        while not stop.is_set():
            tid = f"{plugin}:{task}:{i}"
            await handle.save_trade(Trade(trade_id=tid, symbol="EURUSD", status="closed", pnl=1.0))
            acked[plugin].append(tid)
            i += 1
            await asyncio.sleep(0.005)

    tasks = [asyncio.create_task(writer(t)) for t in range(TASKS)]
    try:
        await asyncio.sleep(0.3)
        for to in moves:
            before = {p: len(v) for p, v in acked.items()}
            report = await store.move_plugin(MOVED, to)
            assert report.ok, report.problems
            assert all(len(acked[p]) > before[p] for p in OTHERS)  # the others went on during the move
            await asyncio.sleep(0.3)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    return acked


@pytest.mark.parametrize("moves", [["isolated"], ["isolated", "shared"]], ids=["out", "out-and-back"])
def test_move_plugin_under_eight_writers_keeps_every_acknowledged_write_once(project: Project,
                                                                              moves: list[str]) -> None:
    project.set_all_shared(True)
    project.set_use_shared(OTHERS[1], False)

    async def run() -> dict[str, list[str]]:
        async with Store.open(project.configs) as store:
            acked = await _writers_during(store, moves)
            assert store.config.plugin(MOVED).use_shared == (moves[-1] == "shared")
            return acked

    acked = asyncio.run(run())
    config = json.loads(project.plugin_config_path(MOVED).read_text())
    assert config["database"]["use_shared"] == (moves[-1] == "shared")
    place = project.shared_db if moves[-1] == "shared" else project.isolated_db(MOVED)
    found = rows(place, MOVED)
    assert sorted(found) == sorted(acked[MOVED]) and len(found) == len(set(found))  # each once, none lost
    assert len(acked[MOVED]) > TASKS  # the moved plugin wrote before and after
    for plugin in OTHERS:
        plugin_place = project.isolated_db(plugin) if plugin == OTHERS[1] else project.shared_db
        assert sorted(rows(plugin_place, plugin)) == sorted(acked[plugin])
