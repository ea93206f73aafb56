"""Everything commands print: one JSON document or a table on stdout, progress on stderr."""

from __future__ import annotations

import json
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from .errors import EXIT_BAD_INPUT
from .literal import show_value, value_counts

__all__ = [
    "WIDTH",
    "Progress",
    "emit_report",
    "format_amount",
    "format_rate",
    "format_seconds",
    "format_table",
    "human",
    "left_out",
    "print_json",
    "print_table",
    "show_value",
    "value_counts",
    "wrapped",
]

WIDTH = 110  # characters of a line of prose; tables keep their own width


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


def left_out(command: str, disabled: Mapping[str, Exception], asked: Sequence[str] | None = None) -> int:
    """Name each plugin left out for its broken config.json on stderr; return the exit code they make.

    2 (bad config) when any was left out, unless `asked` names plugins and none of them is broken: the command
    then did all it was asked, and the broken ones are a warning.
    """
    served = bool(asked) and not set(asked or ()) & set(disabled)
    for plugin, problem in disabled.items():
        word = "warning" if served else "error"
        print(f"zepix-store {command}: {word}: {problem} (plugin {plugin} left out; the others were served)",
              file=sys.stderr)
    return 0 if served or not disabled else EXIT_BAD_INPUT


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


def human(value: object) -> str:
    """A report value in words, never a Python repr: mappings as `k: v`, lists joined, numbers with separators."""
    if isinstance(value, dict):
        return ", ".join(f"{k}: {human(v)}" for k, v in value.items()) or "none"
    if isinstance(value, (list, tuple)):
        return "; ".join(human(v) for v in value) or "none"
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def wrapped(text: str, indent: str = "  ", width: int = WIDTH) -> str:
    """A long line of prose folded at `width`, its continuation indented; words (paths, values) never split."""
    return textwrap.fill(text, width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)


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
    """Progress on stderr: plain lines (`progress("...")`) and units of work with a rate and an ETA.

    The ProgressSink API (zepix_store.progress) for long work: `start(label, total, unit)`, `advance(n)` (from any
    thread), `done()`. Nothing is printed for work shorter than `interval`; then at most one line every
    `interval` seconds (`label: 120,000 of 200,000 rows (60%), 48,000 rows/s, ETA 2 s`) and a closing line
    (`label: 200,000 rows in 4.1 s, 48,000 rows/s`).
    """

    def __init__(self, enabled: bool = True, interval: float = 1.0, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = enabled
        self.interval = interval
        self._stream = stream
        self._clock = clock
        self._last = 0.0
        self._lock = threading.Lock()
        self._label, self._unit = "", "rows"
        self._total: int | None = None
        self._count, self._started, self._printed = 0, 0.0, False

    def __call__(self, message: str, force: bool = True) -> None:
        now = self._clock()
        if self.enabled and (force or now - self._last >= self.interval):
            self._last = now
            self._write(message)

    def start(self, label: str, total: int | None = None, unit: str = "rows") -> None:
        with self._lock:
            self._label, self._total, self._unit = label, total, unit
            self._count, self._started, self._printed = 0, self._clock(), False
            self._last = self._started

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self._count += n
            now = self._clock()
            if self.enabled and now - self._last >= self.interval:
                self._last, self._printed = now, True
                self._write(self._running_line(now - self._started))

    def done(self) -> None:
        with self._lock:
            elapsed = self._clock() - self._started
            if self.enabled and (self._printed or elapsed >= self.interval):
                rate = f", {format_rate(self._count / elapsed, self._unit)}" if elapsed > 0 else ""
                self._write(f"{self._label}: {format_amount(self._count, self._unit)} in {elapsed:.1f} s{rate}")
            self._printed = False

    def _running_line(self, elapsed: float) -> str:
        rate = self._count / elapsed if elapsed > 0 else 0.0
        line = f"{self._label}: {format_amount(self._count, self._unit)}"
        if self._total:
            share = min(self._count / self._total, 1.0)
            line = (f"{self._label}: {format_amount(self._count, self._unit, with_unit=False)} of "
                    f"{format_amount(self._total, self._unit)} ({share:.0%})")
        if rate > 0:
            line += f", {format_rate(rate, self._unit)}"
            if self._total:
                line += f", ETA {format_seconds(max(self._total - self._count, 0) / rate)}"
        return line

    def _write(self, line: str) -> None:
        print(line, file=self._stream or sys.stderr, flush=True)


def format_amount(n: float, unit: str, with_unit: bool = True) -> str:
    """`1,234 rows`, `12.5 MB` (bytes are shown in MB)."""
    if unit == "bytes":
        return f"{n / 1e6:,.1f}" + (" MB" if with_unit else "")
    return f"{int(n):,}" + (f" {unit}" if with_unit else "")


def format_rate(per_second: float, unit: str) -> str:
    if unit == "bytes":
        return f"{per_second / 1e6:,.1f} MB/s"
    return f"{per_second:,.0f} {unit}/s" if per_second >= 10 else f"{per_second:,.1f} {unit}/s"


def format_seconds(seconds: float) -> str:
    """`4 s`, `2 min 5 s`, `1 h 3 min`."""
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"
