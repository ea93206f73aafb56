"""Everything commands print: one JSON document or a table on stdout, progress on stderr."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any


def print_json(document: Any) -> None:
    """Print exactly one JSON document on stdout."""
    json.dump(document, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


def emit_report(command: str, report: Any, as_json: bool, print_human: Callable[[Any], None]) -> int:
    """Print a report (JSON or human), its problems on stderr, and return the exit code: 0 ok, 1 a check failed."""
    if as_json:
        print_json(report.to_json())
    else:
        print_human(report)
    for problem in report.problems:
        print(f"zepix-store {command}: error: {problem}", file=sys.stderr)
    return 0 if report.ok else 1


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An aligned text table; numbers right-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], (int, float)) or row[i] is None for row in rows) and rows
               for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        aligned = zip(values, widths, numeric, strict=True)
        return "  ".join(v.rjust(w) if right else v.ljust(w) for v, w, right in aligned)

    out = [line(list(headers)), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in cells)
    return "\n".join(s.rstrip() for s in out)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    print(format_table(headers, rows))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


class Progress:
    """Progress lines on stderr, at most one every `interval` seconds unless forced."""

    def __init__(self, enabled: bool = True, interval: float = 1.0) -> None:
        self.enabled = enabled
        self.interval = interval
        self._last = 0.0

    def __call__(self, message: str, force: bool = True) -> None:
        now = time.monotonic()
        if self.enabled and (force or now - self._last >= self.interval):
            self._last = now
            print(message, file=sys.stderr, flush=True)
