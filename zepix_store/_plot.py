"""Equity curves as a PNG or SVG: the optional extra `pip install 'zepix-store[plot]'` (matplotlib).

matplotlib is imported only here and only when a plot is asked for, so the store never depends on it. The figure
is drawn on an Agg canvas (no pyplot, no display; settings changed only inside an rc_context) and written under a
temporary name first, so a failed run never leaves a half-written file under the name asked for. matplotlib's own
log (`generated new fontManager` on a first run, a cache folder it cannot write) is held back while it works: the
command's stderr is for the command's messages.
"""

from __future__ import annotations

import contextlib
import logging
import os
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError

__all__ = [
    "CurvePoint",
    "DPI",
    "DRAWDOWN_LEGEND",
    "FORMATS",
    "INSTALL_HINT",
    "NO_TRADES",
    "PLOT_SIZE",
    "TIME_OF_DAY_UNDER",
    "check_plot_name",
    "plot_equity_curves",
    "quiet_matplotlib",
    "require_matplotlib",
]

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PLOT_SIZE = (1200, 675)  # pixels
DPI = 100
INSTALL_HINT = "pip install 'zepix-store[plot]'"
FORMATS = {".png": "png", ".svg": "svg"}
CurvePoint = tuple[str | None, float]
NO_TRADES = "no trades in this window"
DRAWDOWN_LEGEND = "shaded box: each curve's largest drawdown, peak to trough"
TIME_OF_DAY_UNDER = timedelta(days=2)  # a shorter axis labels its ticks with the time of day too
_NOTE_WIDTH = 170  # characters per line of the note under the axes


@contextlib.contextmanager
def quiet_matplotlib() -> Iterator[None]:
    """matplotlib's log held back to errors while it imports and draws (its INFO and WARNING lines are chatter
    to a user of the command: a font cache built on a first run, a temporary cache folder)."""
    logger = logging.getLogger("matplotlib")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def require_matplotlib() -> None:
    """Raise ConfigError (exit 2) with the install command unless matplotlib can be imported."""
    try:
        with quiet_matplotlib():
            import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"--plot needs matplotlib, which is not installed: {INSTALL_HINT}") from exc


def _parse_points(points: Sequence[CurvePoint]) -> tuple[list[datetime], list[float]]:
    """Points with a readable close time, preceded by the zero equity the curve starts from."""
    xs: list[datetime] = []
    ys: list[float] = []
    for when, equity in points:
        try:
            moment = datetime.strptime(str(when)[:19], "%Y-%m-%d %H:%M:%S")
        except ValueError:
            continue  # no close time: its PnL is still in the later points' cumulative values
        if not xs:
            xs.append(moment)
            ys.append(0.0)
        xs.append(moment)
        ys.append(equity)
    return xs, ys


def check_plot_name(path: Path) -> None:
    """Refuse (exit 2) a --plot name that does not end in .png or .svg, before any work."""
    if path.suffix.lower() not in FORMATS:
        raise ConfigError(f"--plot: {path} must end in .png or .svg (the format is taken from the name)")


def plot_equity_curves(curves: Mapping[str, Sequence[CurvePoint]], path: Path, title: str, *,
                       currency: str | None = None, drawdowns: Mapping[str, float] | None = None) -> Path:
    """Draw each plugin's cumulative PnL over close time into `path` (.png or .svg); return `path`.

    Each curve's largest drawdown is shaded (peak to trough) and given in the legend; the plugins without a priced
    closed trade are named once, in a note under the axes, so a missing line never looks like a forgotten plugin.
    """
    check_plot_name(path)
    require_matplotlib()
    with quiet_matplotlib():
        _draw(curves, path, title, currency or "", drawdowns or {})
    return path


def _draw(curves: Mapping[str, Sequence[CurvePoint]], path: Path, title: str, money: str,
          drawdowns: Mapping[str, float]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=(PLOT_SIZE[0] / DPI, PLOT_SIZE[1] / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    empty: list[str] = []
    times: list[datetime] = []
    shaded = False
    for plugin_id, points in curves.items():
        xs, ys = _parse_points(points)
        if not xs:
            empty.append(plugin_id)
            continue
        times += xs
        # matplotlib converts datetimes through its units registry; its type stubs do not say so
        (line,) = ax.step(xs, ys, where="post", linewidth=1.2,  # type: ignore[arg-type]
                          label=f"{plugin_id} ({ys[-1]:+,.2f}{' ' + money if money else ''}; "
                                f"max DD {drawdowns.get(plugin_id, 0.0):,.2f})")
        shaded = _shade_drawdown(ax, plugin_id, xs, ys, line.get_color()) or shaded
    if times:
        ax.axhline(0.0, color="grey", linewidth=0.8)
        handles, _labels = ax.get_legend_handles_labels()
        if shaded:
            handles.append(Patch(facecolor="grey", alpha=0.25, label=DRAWDOWN_LEGEND))
        ax.legend(handles=handles, loc="best", fontsize="small")
        _date_axis(ax, min(times), max(times))
    else:  # no axis to read: no numbers on it
        ax.set(xticks=[], yticks=[])
        ax.text(0.5, 0.5, NO_TRADES, transform=ax.transAxes, ha="center", va="center", color="grey")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:,.0f}" if _wide(ax) else f"{value:,.2f}"))
    ax.set(title=title, xlabel="close time (UTC)", ylabel=f"cumulative PnL{f' ({money})' if money else ''}")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    if empty:
        note = textwrap.fill(f"{NO_TRADES}: {', '.join(empty)}", _NOTE_WIDTH, break_on_hyphens=False)
        fig.subplots_adjust(bottom=0.2 + 0.03 * note.count("\n"))
        fig.text(0.01, 0.01, note, fontsize="small", ha="left", va="bottom", gid="no-trades")
    _save(fig, path)


def _date_axis(ax: Axes, first: datetime, last: datetime) -> None:
    """Ticks that say the date with month and year; the time of day too only on an axis under two days."""
    from matplotlib.dates import AutoDateLocator, DateFormatter

    if first == last:  # one moment: an hour either side (matplotlib would widen it to years)
        ax.set_xlim(first - timedelta(hours=1), last + timedelta(hours=1))  # type: ignore[arg-type]
    short = last - first < TIME_OF_DAY_UNDER
    # on a longer axis two ticks a day apart suffice, so the locator never steps in hours: no date twice
    locator = AutoDateLocator(minticks=3 if short else 2, maxticks=8)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(DateFormatter("%d %b %Y %H:%M" if short else "%d %b %Y"))  # type: ignore[no-untyped-call]


def _wide(ax: Axes) -> bool:
    low, high = ax.get_ylim()
    return bool(high - low >= 100)


def _shade_drawdown(ax: Axes, plugin_id: str, xs: list[datetime], ys: list[float], color: object) -> bool:
    """Shade the curve's largest drawdown, peak to trough; False if it has none."""
    peak_i = trough_i = best_i = 0
    worst = 0.0
    for i, y in enumerate(ys):
        if y > ys[best_i]:
            best_i = i
        if ys[best_i] - y > worst:
            worst, peak_i, trough_i = ys[best_i] - y, best_i, i
    if worst <= 0:
        return False
    # a box from the peak to the trough in time and from the trough's to the peak's equity in value
    box = ax.fill_between([xs[peak_i], xs[trough_i]], ys[trough_i], ys[peak_i],  # type: ignore[arg-type]
                          color=color, alpha=0.2, linewidth=0)
    box.set_gid(f"drawdown {plugin_id}")
    return True


def _save(fig: Figure, path: Path) -> None:
    import matplotlib

    kind = FORMATS[path.suffix.lower()]
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        # Text in an SVG stays text (searchable, editable), not outlines.
        with matplotlib.rc_context({"svg.fonttype": "none"}):
            fig.savefig(tmp, format=kind, dpi=DPI)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
