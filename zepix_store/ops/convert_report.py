"""What convert did, per plugin and table: the report both directions fill and the command prints."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["ConvertReport", "UnitReport"]


@dataclass
class UnitReport:
    """One plugin's table: where from, where to, how many rows, and what this run did."""

    plugin_id: str
    table: str
    source: str
    target: str
    source_rows: int
    copied_before: int = 0  # rows an earlier run had copied (the ledger)
    copied: int = 0  # rows this run copied
    status: str = "pending"  # pending | copied | up to date | would copy | refused | failed


@dataclass
class ConvertReport:
    """A whole run: every unit, what was created, warnings, and the problems that make it fail (exit 1)."""

    source: str
    target: str
    dry_run: bool
    units: list[UnitReport] = field(default_factory=list)
    created: list[str] = field(default_factory=list)  # schemas (or, on the way back, files); a dry run's: would be
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def nothing_to_do(self) -> bool:
        return self.ok and not self.dry_run and all(u.status == "up to date" for u in self.units)

    def rows_copied(self) -> int:
        return sum(u.copied for u in self.units)

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.update(ok=self.ok, rows_copied=self.rows_copied(), nothing_to_do=self.nothing_to_do)
        return doc
