"""What one synchronisation is asked to do: which plugins of which isolated file, which way, how to resolve."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ...config import StoreConfig
from ...progress import NO_PROGRESS, ProgressSink
from ...schema import ATTRIBUTION_ORDER, TABLE_BY_NAME, Table

__all__ = ['Direction', 'PREFER', 'SyncJob', 'Unsettled']


class Direction(enum.Enum):
    TO_ISOLATED = "isolated"  # split: the shared file is the source
    TO_SHARED = "shared"      # merge: the isolated file is the source

    @property
    def command(self) -> str:
        return "split" if self is Direction.TO_ISOLATED else "merge"

    @property
    def src(self) -> str:
        return "sh" if self is Direction.TO_ISOLATED else "iso"

    @property
    def dst(self) -> str:
        return "iso" if self is Direction.TO_ISOLATED else "sh"


PREFER = ("source", "destination")


class Unsettled(enum.Enum):
    """What rows still changing after the last round mean (something keeps writing the source)."""

    FAIL = "fail"    # split, merge: a problem, run again
    LATER = "later"  # flip's first pass: its last round, with the plugin's writers held, finishes the work
    NAME = "name"    # flip's last round: the store's writers are held, so only code outside the store writes
    #                  there: named as a warning, what it wrote is carried over by the next sync


@dataclass
class SyncJob:
    """One isolated file and the plugins of it to synchronise with the shared file.

    `present` names the columns each table has in the shared file (tables it lacks are left out).
    `max_hold_ms` bounds every write transaction on a file the bot may use; a new file is built in one.
    """

    config: StoreConfig
    isolated_db: Path
    plugins: list[str]
    direction: Direction
    present: dict[str, set[str]]
    prefer: str | None = None
    dry_run: bool = False
    remap: bool = False
    max_hold_ms: float = 100.0
    unsettled: Unsettled = Unsettled.FAIL
    progress: ProgressSink = field(default=NO_PROGRESS)
    say: Callable[[str], None] = field(default=lambda _line: None)  # one line per table done

    def __post_init__(self) -> None:
        assert self.prefer in (None, *PREFER)

    @property
    def tables(self) -> list[Table]:
        return [TABLE_BY_NAME[n] for n in ATTRIBUTION_ORDER if n in self.present]
