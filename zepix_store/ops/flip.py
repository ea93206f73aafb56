"""flip: the whole move of one plugin, to its isolated file or back to the shared file.

Backup of the file that will receive rows, a first synchronisation while the bot keeps writing, then the last
round: with the plugin's writers held (writer_lock.py: every store handle, in any process, waits), one more
synchronisation carries what they wrote meanwhile and the plugin's config.json is rewritten atomically (only
`database.use_shared`). Writers then go on, check the route under the lock and write the new place: the last
round always converges, and no write lands in the old place after it. Only code outside the store (an old bot
writing the file with its own SQL) can still write the old place: it is named, and the next synchronisation
carries it over. `prune` then deletes the verified rows from the old place. Killed at any point, the config says
the old route until the rewrite and the new one after it, and each is consistent: a rerun finishes the move.
A flip to where the config already routes the plugin, with nothing left to carry over (planned read-only) and
no --prune, changes nothing: no backup, no config rewrite, no sync.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import fault
from ..backend.sqlite_backup import backup_file
from ..backup_identity import identity_of
from ..config import StoreConfig, load_config
from ..config_edit import set_use_shared
from ..errors import ConfigError
from ..plugin_lock import DEFAULT_LOCK_WAIT_S, plugin_locks, with_file_mates
from ..progress import NO_PROGRESS, ProgressSink
from ..writer_lock import writers_excluded
from .merge import MergeReport, merge, shared_columns
from .prune import prune_isolated
from .split import SplitReport, split
from .sync.files import attach, check_regular_file
from .sync.job import Unsettled
from .sync.report import SyncReport
from .sync.shared import open_shared

__all__ = ['flip', 'FlipReport', 'TARGETS']

TARGETS = ("isolated", "shared")


@dataclass(kw_only=True)
class FlipReport:
    plugin_id: str
    to: str
    dry_run: bool = False
    backup: str | None = None
    config_changed: bool = False
    already: str | None = None  # set when the plugin was already there and nothing changed: says so
    syncs: list[SyncReport] = field(default_factory=list)
    prune: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def longest_hold_ms(self) -> float:
        """The longest write transaction held on a file the bot may use (syncs and prune)."""
        return max([s.longest_hold_ms for s in self.syncs] + [float(self.prune.get("longest_hold_ms", 0.0))])

    def to_json(self) -> dict[str, Any]:
        return {"plugin_id": self.plugin_id, "to": self.to, "dry_run": self.dry_run, "backup": self.backup,
                "config_changed": self.config_changed, "already_there": self.already is not None,
                "note": self.already, "prune": self.prune, "problems": self.problems,
                "longest_hold_ms": round(self.longest_hold_ms, 1), "ok": self.ok,
                "syncs": [s.to_json() for s in self.syncs]}


def flip(config_dir: str, plugin_id: str, to: str, *, prune: bool = False, dry_run: bool = False,
         prefer: str | None = None, progress: ProgressSink = NO_PROGRESS, max_hold_ms: float = 100.0,
         lock_wait_s: float = DEFAULT_LOCK_WAIT_S) -> FlipReport:
    """Move `plugin_id` to `to` ("isolated" or "shared"); see the module doc."""
    if to not in TARGETS:
        raise ConfigError(f"--to: {to!r}: say isolated or shared")
    config, _isolated = _load(config_dir, plugin_id)
    with nullcontext() if dry_run else plugin_locks(config.data_dir, with_file_mates(config, [plugin_id]),
                                                         f"flip {plugin_id} --to {to}", lock_wait_s):
        # Read again under the lock: a flip that waited for another sees where that one left the plugin.
        config, isolated = _load(config_dir, plugin_id)
        plugin = config.plugin(plugin_id)
        report = FlipReport(plugin_id=plugin_id, to=to, dry_run=dry_run)
        if plugin.use_shared == (to == "shared") and not prune and _nothing_to_carry(config, plugin_id, to, prefer):
            other = "split" if to == "isolated" else "merge"
            report.already = (f"plugin {plugin_id} is already {to} ({plugin.config_path.name} says use_shared: "
                              f"{str(to == 'shared').lower()}) and nothing is left to carry over; nothing changed. "
                              f"Rows an old bot writes in the other place later are carried over by `zepix-store "
                              f"{other} --plugin {plugin_id}`")
            return report
        if dry_run:
            report.syncs.append(_sync(config, plugin_id, to, prefer, progress, max_hold_ms, dry_run=True))
            report.problems += report.syncs[-1].problems
            return report
        if to == "isolated" and check_regular_file(isolated):
            report.backup = str(backup_file(isolated, config.backup_dir, "pre-flip",
                                            identity=identity_of(config, isolated)))
            fault.point("after_flip_backup")
        first = _sync(config, plugin_id, to, prefer, progress, max_hold_ms, unsettled=Unsettled.LATER)
        report.syncs.append(first)
        if to == "shared" and isinstance(first, MergeReport):
            report.backup = first.backup
        if not first.ok:
            report.problems += first.problems
            return report
        with writers_excluded(config.data_dir, plugin_id, f"flip {plugin_id} --to {to}", lock_wait_s):
            fault.point("after_writers_held")
            last = _sync(config, plugin_id, to, prefer, progress, max_hold_ms, unsettled=Unsettled.NAME)
            report.syncs.append(last)
            report.problems += last.problems
            if not last.ok:
                return report
            fault.point("before_config_rewrite")
            report.config_changed = set_use_shared(plugin.config_path, to == "shared")
            fault.point("after_config_rewrite")
        if prune:
            config = load_config(config_dir)
            if to == "isolated":
                pruned = _sync(config, plugin_id, to, prefer, progress, max_hold_ms, unsettled=Unsettled.NAME,
                               prune=True)
                report.syncs.append(pruned)
                report.problems += pruned.problems
                assert isinstance(pruned, SplitReport)
                report.prune = pruned.prune
            else:
                report.prune = _prune_isolated(config, plugin_id)
        return report


def _load(config_dir: str, plugin_id: str) -> tuple[StoreConfig, Path]:
    """The configs, and the plugin's isolated file (a plugin without one cannot flip)."""
    config = load_config(config_dir)
    plugin = config.plugin(plugin_id)
    if plugin.isolated_db is None:
        raise ConfigError(f"{plugin.config_path}: database.isolated_db: plugin {plugin_id} has no isolated file")
    return config, plugin.isolated_db


def _sync(config: StoreConfig, plugin_id: str, to: str, prefer: str | None, progress: ProgressSink,
          max_hold_ms: float, dry_run: bool = False, prune: bool = False,
          unsettled: Unsettled = Unsettled.FAIL) -> SyncReport:
    if to == "isolated":
        return split(config, [plugin_id], dry_run=dry_run, prefer=prefer, progress=progress, max_hold_ms=max_hold_ms,
                     prune=prune, unsettled=unsettled)
    # the first pass backed the shared file up; the last round (its writers waiting) makes no second backup
    return merge(config, [plugin_id], dry_run=dry_run, prefer=prefer, progress=progress, max_hold_ms=max_hold_ms,
                 routed=False, unsettled=unsettled, backup=unsettled is not Unsettled.NAME)


def _nothing_to_carry(config: StoreConfig, plugin_id: str, to: str, prefer: str | None) -> bool:
    """Whether a synchronisation to `to` would write nothing (planned read-only): the move is complete.

    A killed flip's rerun is not a no-op: its config already names the new place, but rows wait to be carried.
    """
    plugin = config.plugin(plugin_id)
    if to == "shared" and (plugin.isolated_db is None or not check_regular_file(plugin.isolated_db)):
        return True
    plan = _sync(config, plugin_id, to, prefer, NO_PROGRESS, 100.0, dry_run=True)
    return plan.ok and not any(p.writes or p.conflicts for p in plan.plugins.values())


def _prune_isolated(config: StoreConfig, plugin_id: str) -> dict[str, Any]:
    path = config.plugin(plugin_id).isolated_db
    assert path is not None
    conn = open_shared(config.shared_db, "rw")
    try:
        attach(conn, path, "iso", "rw")
        return prune_isolated(conn, config, plugin_id, path, shared_columns(conn))
    finally:
        conn.close()
