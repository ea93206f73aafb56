"""One synchronisation between a plugin's rows in the shared file and in its isolated file (split, merge, flip).

Each plugin has one identity map, kept in its isolated file: pairs of (shared rowid, isolated rowid). What the
two rows held when they were last synchronised (the base of a three-way comparison) is the isolated row itself,
unless the bot changed it since: triggers in the isolated file then keep the row as it was (`zx_sync_base_*`),
so the shared file is never written by a split. From current rows and base, each pair is unchanged, changed on
one side (copied over the other, or kept as the bot's newer write), or changed on both (a conflict).

Schema names in SQL text: `sh` (the shared file), `iso` (the isolated file) and `main`/`temp` (the scratch
connection's in-memory database); table and column names come from schema.py only.
"""

from .engine import synchronise
from .job import Direction, SyncJob, Unsettled

__all__ = ["Direction", "SyncJob", "Unsettled", "synchronise"]
