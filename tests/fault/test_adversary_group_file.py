"""Two plugins of one group file synchronised at once: different plugin locks, one SQLite file.

Each flip holds only its own plugin's lock, so both write the combined isolated file (and the shared file)
at the same time. Every row of both plugins must end once where each is routed, with nothing refused as busy.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, Project, child_env, cli_ok, copy_database, query, run_cli, scaled
from zepix_store.legacy_data import build_legacy_db
from zepix_store.plugin_lock import plugin_locks

GROUP = ("v3-logic-01-5min", "v3-logic-02-15min", "v3-logic-03-1h")


def at_once(project: Project, moves: list[tuple[str, ...]]) -> None:
    procs = [subprocess.Popen([sys.executable, "-m", "zepix_store.cli", *m, "--config", str(project.configs), "-q",
                               "--json"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=child_env()) for m in moves]
    results = [(m, p.wait(timeout=300), p.stderr.read() if p.stderr else "") for m, p in zip(moves, procs)]
    for p in procs:
        for stream in (p.stdout, p.stderr):
            if stream:
                stream.close()
    assert [(m, rc, err[-1500:]) for m, rc, err in results if rc != 0] == []


def per_plugin(path: Path) -> dict[tuple[str, str], int]:
    out = {}
    for table in ("trades", "reentry_chains", "trading_sessions", "sl_events", "profit_booking_chains",
                  "profit_booking_orders", "system_state"):
        for pid, n in query(path, f"SELECT plugin_id, count(*) FROM {table} GROUP BY plugin_id"):
            if pid in GROUP:
                out[(table, str(pid))] = int(n)
    return out


@pytest.mark.slow
def test_plugins_of_one_group_file_moving_at_once_keep_every_row_once(tmp_path: Path) -> None:
    build_legacy_db(tmp_path / "legacy.db", trades=scaled(300, 300, 3000), seed=9)
    projects = []
    for name in ("together", "one-by-one"):
        project = Project(tmp_path / name)
        copy_database(tmp_path / "legacy.db", project.shared_db)
        project.set_all_shared(True)
        at_once(project, [("migrate",)])
        projects.append(project)
    together, alone = projects
    rounds = [[("flip", pid, "--to", "isolated") for pid in GROUP],
              [("flip", pid, "--to", "shared", "--prune") for pid in GROUP],
              [("split", "--plugin", pid, "--prune") for pid in GROUP],
              [("flip", pid, "--to", "shared") for pid in GROUP]]
    for _ in range(scaled(1, 2, 5)):
        for moves in rounds:
            at_once(together, moves)
            for move in moves:  # the reference, one after the other: in this process (no interpreter start-up)
                cli_ok(move[0], alone, *move[1:], "-q")
            for place in (lambda p: p.shared_db, lambda p: p.isolated_db(GROUP[0])):
                assert per_plugin(place(together)) == per_plugin(place(alone)), moves[0]
    at_once(together, [("verify",)])


def test_a_plugin_waits_while_a_mate_of_its_group_file_builds_it(project: Project, tmp_path: Path) -> None:
    build_legacy_db(tmp_path / "legacy.db", trades=40, seed=9)
    copy_database(tmp_path / "legacy.db", project.shared_db)
    project.set_all_shared(True)
    at_once(project, [("migrate",)])
    combined = project.isolated_db(GROUP[0])
    building = combined.with_name(combined.name + ".tmp")
    # What a flip of the first plugin holds while it builds the new group file.
    with plugin_locks(project.data, [GROUP[0]], f"flip {GROUP[0]} --to isolated"):
        building.write_bytes(b"")
        done = run_cli("flip", GROUP[1], "--to", "isolated", "--lock-wait", "0.3", config=project, process=True)
        assert done.rc == 4, done.stdout[-1500:] + done.stderr[-1500:]
        assert f"flip {GROUP[0]} --to isolated" in done.stderr  # the holder is named
        assert building.exists() and not combined.exists()  # the mate's file in the making is left alone
        building.unlink()
    assert run_cli("flip", GROUP[1], "--to", "isolated", config=project).rc == 0
