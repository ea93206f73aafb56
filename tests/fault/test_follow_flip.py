"""A running bot follows a flip made from the command line (SPEC 5a, issue 21).

A writer PROCESS saves trades through the store (the compat facade, or `Store`) without pause while
`python -m zepix_store.flip` moves its plugin back and forth. Every flip must exit 0 (its last round holds the
plugin's writers, so it converges), and after each one every trade the writer acknowledged so far must be
exactly once, closed, in the place the plugin is routed to then: the writer followed the move, and no write of
it landed in the old place after the move. Then the same with kill -9 of the flip at random instants: a rerun
finishes the move and still every acknowledged write is there once. Set ZEPIX_KILL_SEED to replay the kills.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import REPO, Project, child_env, cli_ok, copy_database, legacy_template, query, scaled

pytestmark = pytest.mark.slow

PLUGIN = "v6-logic-01-1min"
ROUNDS = scaled(4, 8, 20)  # flips to isolated and back
KILLS = scaled(4, 8, 20)
SEED = int(os.environ.get("ZEPIX_KILL_SEED", str(random.SystemRandom().randrange(1 << 30))))

COMPAT_WRITER = """
import sys, time
from pathlib import Path
from zepix_store.compat import TradeDatabase

configs, stop, plugin = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
db = TradeDatabase(plugin, configs)
print("ready", flush=True)
i = 0
while not stop.exists():
    tid = f"F{i}"
    db.save_trade({"trade_id": tid, "symbol": "EURUSD", "status": "open", "pnl": None})
    db.save_trade({"trade_id": tid, "symbol": "EURUSD", "status": "closed", "pnl": 1.5,
                   "close_time": "2026-01-20T10:00:00.000001"})
    print(tid, flush=True)
    i += 1
    time.sleep(0.002)
db.close()
"""

STORE_WRITER = """
import asyncio, sys
from pathlib import Path
from zepix_store import Store

async def main(configs, stop, plugin):
    async with Store.open(configs) as store:
        db = store.for_plugin(plugin)
        print("ready", flush=True)
        i = 0
        while not stop.exists():
            tid = f"F{i}"
            await db.save_trade({"trade_id": tid, "symbol": "EURUSD", "status": "open", "pnl": None})
            await db.save_trade({"trade_id": tid, "symbol": "EURUSD", "status": "closed", "pnl": 1.5,
                                 "close_time": "2026-01-20T10:00:00.000001"})
            print(tid, flush=True)
            i += 1
            await asyncio.sleep(0.002)

asyncio.run(main(sys.argv[1], Path(sys.argv[2]), sys.argv[3]))
"""
WRITERS = {"compat": COMPAT_WRITER, "store": STORE_WRITER}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return legacy_template(tmp_path_factory, trades=120, seed=5)


class Writer:
    """The writer process, and the trade ids it acknowledged (read from its stdout as it prints them)."""

    def __init__(self, project: Project, kind: str, stop: Path) -> None:
        self.stop = stop
        self.proc = subprocess.Popen([sys.executable, "-c", WRITERS[kind], str(project.configs), str(stop), PLUGIN],
                                     cwd=REPO, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().strip()
        assert first == "ready", first + self.proc.stderr.read()[-3000:]  # type: ignore[union-attr]
        self.acked: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.acked.append(line.strip())

    def wait_for_more(self, count: int = 3, timeout: float = 30) -> None:
        """Let the writer acknowledge a few more trades (it is alive and writing)."""
        want, deadline = len(self.acked) + count, time.monotonic() + timeout
        while len(self.acked) < want:
            assert self.proc.poll() is None, self.proc.stderr.read()[-3000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the writer stopped acknowledging writes"
            time.sleep(0.01)

    def finish(self) -> list[str]:
        self.stop.touch()
        self._reader.join(60)  # it reads stdout to its end: the writer has exited
        assert self.proc.stderr is not None
        err = self.proc.stderr.read()
        code = self.proc.wait(timeout=60)
        for pipe in (self.proc.stdout, self.proc.stderr):
            pipe.close()  # type: ignore[union-attr]
        assert code == 0, err[-3000:]
        return self.acked


def setup(project: Project, template: Path) -> None:
    copy_database(template, project.shared_db)
    project.set_all_shared(True)
    cli_ok("migrate", project)


def routed(project: Project) -> Path:
    doc = json.loads(project.plugin_config_path(PLUGIN).read_text())
    return project.shared_db if doc["database"]["use_shared"] else project.isolated_db(PLUGIN)


def assert_once_where_routed(project: Project, acked: list[str]) -> None:
    """Every acknowledged trade once, closed, where the plugin is routed now (the old place may hold copies)."""
    place = routed(project)
    rows = query(place, "SELECT trade_id, status, count(*) FROM trades WHERE plugin_id = ? AND trade_id LIKE 'F%' "
                        "GROUP BY trade_id", (PLUGIN,))
    found = {t: (s, n) for t, s, n in rows}
    wrong = {t: found.get(t) for t in acked if found.get(t) != ("closed", 1)}
    assert (len(wrong), dict(list(wrong.items())[:5])) == (0, {}), f"{len(acked)} acknowledged, in {place.name}"


def flip(project: Project, to: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zepix_store.flip", PLUGIN, "--to", to, "--config",
                           str(project.configs), "-q", "--json"], cwd=REPO, env=child_env(), capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_a_writer_process_follows_every_cli_flip(project: Project, template: Path, tmp_path: Path,
                                                 kind: str) -> None:
    setup(project, template)
    writer = Writer(project, kind, tmp_path / "stop")
    try:
        for _ in range(ROUNDS):
            for to in ("isolated", "shared"):
                writer.wait_for_more()
                done = flip(project, to)
                assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
                assert json.loads(done.stdout)["config_changed"] is True
                # acknowledged before this check: written before the move (carried) or after it (followed)
                assert_once_where_routed(project, list(writer.acked))
    finally:
        acked = writer.finish()
    assert_once_where_routed(project, acked)
    assert len(acked) > 2 * ROUNDS * 3


def test_kill_9_of_a_flip_beside_a_writer_then_a_rerun_loses_and_doubles_nothing(
        project: Project, template: Path, tmp_path: Path) -> None:
    setup(project, template)
    start = time.monotonic()
    assert flip(project, "isolated").returncode == 0  # the first flip (a new file) also times one flip
    span = time.monotonic() - start
    rng = random.Random(SEED)
    writer = Writer(project, "compat", tmp_path / "stop")
    killed = 0
    try:
        for n in range(KILLS):
            to = "shared" if n % 2 == 0 else "isolated"
            writer.wait_for_more()
            proc = subprocess.Popen([sys.executable, "-m", "zepix_store.flip", PLUGIN, "--to", to, "--config",
                                     str(project.configs), "-q"], cwd=REPO, env=child_env(),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            time.sleep(rng.uniform(0.1, 1.5 * span))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed += 1
            _out, err = proc.communicate(timeout=60)
            assert proc.returncode in (0, -signal.SIGKILL), f"seed {SEED}: {err[-2000:]}"
            assert_once_where_routed(project, list(writer.acked))  # the route it left is consistent
            done = flip(project, to)  # the rerun finishes the move
            assert done.returncode == 0, f"seed {SEED}: " + done.stdout[-2000:] + done.stderr[-2000:]
            assert_once_where_routed(project, list(writer.acked))
    finally:
        acked = writer.finish()
    assert_once_where_routed(project, acked)
    assert killed, f"seed {SEED}: no flip was still running when its kill came"
