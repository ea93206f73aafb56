"""Paths checked at open (SPEC 3): a folder swapped for a symlink after the configs loaded is not followed.

The configs resolve every database path once; a data folder replaced by a symlink since then would lead a write
out of data_dir. Store and the compat facade check the resolved folder of each file when they open it.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import Project
from zepix_store import Store
from zepix_store.compat import TradeDatabase
from zepix_store.errors import StoreError

PLUGIN = "v6-logic-01-1min"
TRADE = {"trade_id": "T1", "symbol": "EURUSD", "status": "open", "entry_price": 1.1}


def _route_into_sub(project: Project) -> Path:
    """The plugin's isolated file in data/sub/ (a folder of its own, which can be swapped)."""
    config = project.configs / "plugins" / PLUGIN / "config.json"
    doc = json.loads(config.read_text())
    doc["database"]["isolated_db"] = "data/sub/p.db"
    config.write_text(json.dumps(doc))
    (project.data / "sub").mkdir()
    return project.data / "sub" / "p.db"


def _swap_for_symlink(folder: Path, outside: Path) -> None:
    """Replace `folder` by a symlink to `outside` (its contents moved aside, so nothing is lost)."""
    folder.rename(folder.with_name(folder.name + ".moved"))
    os.symlink(outside, folder)


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


async def _store_save(project: Project, swap: Callable[[], None]) -> None:
    async with Store.open(project.configs) as store:
        handle = store.for_plugin(PLUGIN)  # the configs are loaded and checked here
        swap()
        await handle.save_trade(TRADE)


def _compat_save(project: Project, swap: Callable[[], None]) -> None:
    with TradeDatabase(PLUGIN, project.configs) as db:  # the configs are loaded and checked here
        swap()
        db.save_trade(TRADE)


@pytest.mark.parametrize("swapped", ["sub", "data"])
@pytest.mark.parametrize("via", ["store", "compat"])
def test_a_folder_swapped_for_a_symlink_after_the_configs_loaded_is_refused(project: Project, tmp_path: Path,
                                                                             swapped: str, via: str) -> None:
    path = _route_into_sub(project)
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)  # so data/sub/p.db would land in outside/sub/ when data is swapped
    before = _listing(outside)
    folder = project.data / "sub" if swapped == "sub" else project.data

    def swap() -> None:
        _swap_for_symlink(folder, outside)

    with pytest.raises(StoreError) as caught:
        if via == "store":
            asyncio.run(_store_save(project, swap))
        else:
            _compat_save(project, swap)
    message = str(caught.value)
    assert str(path) in message and "outside data_dir" in message, message
    assert _listing(outside) == before  # no file created outside data_dir


@pytest.mark.parametrize("via", ["store", "compat"])
def test_the_unswapped_folder_is_opened(project: Project, via: str) -> None:
    path = _route_into_sub(project)
    if via == "store":
        asyncio.run(_store_save(project, lambda: None))
    else:
        _compat_save(project, lambda: None)
    assert path.is_file()
