"""merge's commit order across the two files: pairs (isolated file) before rows (shared file).

One SQLite transaction spans both files, and SQLite commits attached WAL files one after the other in attach
order (vdbeCommit), so no Python code runs between the two commits. The order is pinned by recording which file
each chunk's transaction commits first; the instant between the two commits is rebuilt exactly from two real
kills of the same merge: the shared file as a kill just before the chunk left it (fault point
`before_chunk`), the isolated file as a kill just after its commit left it (`after_copy`). A rerun from there
must leave every trade once in the shared file, none lost.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import Project, build_template, connect_ro, run_cli, split_install
from zepix_store import Store
from zepix_store.ops.sync import apply

PLUGIN = "v3-logic-02-15min"
NEW = 25  # trades the plugin saves in its isolated file after the split: merge copies them


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template(tmp_path_factory)


async def _bot_writes(project: Project) -> None:
    async with Store.open(project.configs) as store:
        await store.for_plugin(PLUGIN).save_trades(
            [{"trade_id": f"NEW-{n}", "symbol": "EURUSD", "status": "closed", "pnl": float(n)} for n in range(NEW)])


def _ready(template: Path, root: Path) -> Project:
    """Split and migrate, then the plugin (isolated) saves NEW trades, then its config routes it to the shared file."""
    project = Project(root)
    split_install(template, project)
    assert run_cli("split", "-q", config=project).returncode == 0
    assert run_cli("migrate", "-q", config=project).returncode == 0  # a merge needs plugin_id in the shared file
    asyncio.run(_bot_writes(project))
    project.set_use_shared(PLUGIN, True)
    return project


def _merge(project: Project, fault: str | None = None) -> int:
    return run_cli("merge", "-q", "--plugin", PLUGIN, config=project, fault=fault).returncode


def _trades(path: Path) -> list[tuple[object, ...]]:
    conn = connect_ro(path)
    try:
        return conn.execute("SELECT trade_id, status, pnl FROM trades WHERE plugin_id = ? ORDER BY trade_id, id",
                            (PLUGIN,)).fetchall()
    finally:
        conn.close()


def _replace(db: Path, by: Path) -> None:
    """`db` and its WAL as a killed process left them, taken from another run (files closed: plain copies)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
        if Path(f"{by}{suffix}").exists() and suffix != "-shm":
            shutil.copyfile(f"{by}{suffix}", f"{db}{suffix}")


def test_a_kill_between_the_two_commits_loses_nothing_and_copies_nothing_twice(template: Path,
                                                                               tmp_path: Path) -> None:
    before = _ready(template, tmp_path / "before")  # killed as the first trades chunk starts: nothing of it
    after = _ready(template, tmp_path / "after")    # killed once that chunk committed in both files
    assert _merge(before, f"before_chunk:{PLUGIN}:trades:kill") == -9
    assert _merge(after, f"after_copy:{PLUGIN}:trades:kill") == -9
    assert len(_trades(after.shared_db)) > len(_trades(before.shared_db))  # the chunk did land in `after`
    # The instant between the commits: the isolated file (pairs) committed, the shared file (rows) not yet.
    _replace(after.shared_db, before.shared_db)
    isolated = _trades(after.isolated_db(PLUGIN))
    assert len(_trades(after.shared_db)) < len(isolated)  # rows missing, though their pairs are recorded

    assert _merge(after) == 0

    assert _trades(after.shared_db) == isolated  # every trade once: none lost, none copied twice
    assert run_cli("verify", "-q", config=after).returncode == 0
    assert _merge(after) == 0 and _trades(after.shared_db) == isolated  # and a further run changes nothing


@contextmanager
def _commit_order(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """The attached files of each chunk transaction, in SQLite's commit order (its attach order)."""
    seen: list[list[str]] = []
    real = apply.transaction

    @contextmanager
    def recording(conn: sqlite3.Connection) -> Iterator[None]:
        with real(conn):
            yield
            seen.append([row[1] for row in conn.execute("PRAGMA database_list") if row[1] in ("iso", "sh")])

    monkeypatch.setattr(apply, "transaction", recording)
    yield seen


def test_the_isolated_file_commits_before_the_shared_file(template: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    project = _ready(template, tmp_path / "p")
    with _commit_order(monkeypatch) as seen:
        assert _merge(project) == 0
    assert seen and all(files == ["iso", "sh"] for files in seen), seen
