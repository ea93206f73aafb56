"""A Store used the wrong way says how to use it: awaited, or never closed (its connections then close at exit)."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap

import pytest

from tests.helpers import REPO, Project, query
from zepix_store import Store, Trade

A = "v6-logic-01-1min"
FIX = "use `async with Store.open(...) as store:`, or call `await store.aclose()` when done"


async def test_awaiting_store_open_names_the_fix(project: Project) -> None:
    with pytest.raises(TypeError) as raised:
        await Store.open(project.configs)  # type: ignore[misc]
    assert str(raised.value) == f"Store.open() returns the store itself, it is not awaited: {FIX}"


NEVER_CLOSED = textwrap.dedent("""
    import asyncio, sys
    from zepix_store import Store, Trade
    STORE = None
    async def main():
        global STORE
        STORE = Store.open(sys.argv[1])  # no async with, no aclose: a bot's global
        await STORE.for_plugin(sys.argv[2]).save_trade(Trade(trade_id="kept"))
    asyncio.run(main())
""")


def test_a_store_never_closed_is_named_at_exit_with_the_fix(project: Project) -> None:
    done = subprocess.run([sys.executable, "-c", NEVER_CLOSED, str(project.configs), A], capture_output=True,
                          text=True, timeout=30, cwd=REPO, check=False)

    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"zepix_store: closing 1 database connection(s) a Store never closed ({project.isolated_db(A)}): {FIX}"]
    assert query(project.isolated_db(A), "SELECT trade_id FROM trades") == [("kept",)]


async def test_a_store_dropped_unclosed_warns_with_the_fix(project: Project,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    store = Store.open(project.configs)
    await store.for_plugin(A).save_trade(Trade(trade_id="t"))
    databases = list(store._databases.values())  # noqa: SLF001 - closed below, after the warning
    with pytest.warns(ResourceWarning, match="was never closed"):
        del store
        gc.collect()
    assert f"a Store with 1 open database connection(s) was never closed: {FIX}" in caplog.text
    for db in databases:
        await db.close()
