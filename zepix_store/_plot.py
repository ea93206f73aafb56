"""Equity curves as a PNG or SVG: the optional extra `pip install 'zepix-store[plot]'` (matplotlib).

matplotlib is imported only here and only when a plot is asked for, so the store never depends on it. The figure
is drawn on an Agg canvas (no pyplot, no display; settings changed only inside an rc_context) and written under a
temporary name first, so a failed run never leaves a half-written file under the name asked for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError

__all__ = [
    "CurvePoint",
    "DPI",
    "FORMATS",
    "INSTALL_HINT",
    "PLOT_SIZE",
    "check_plot_name",
    "plot_equity_curves",
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


def require_matplotlib() -> None:
    """Raise ConfigError (exit 2) with the install command unless matplotlib can be imported."""
    try:
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

    Each curve's largest drawdown is marked (peak to trough) and given in the legend; a plugin without a priced
    closed trade is named in the legend too, so a missing line never looks like a forgotten plugin.
    """
    check_plot_name(path)
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=(PLOT_SIZE[0] / DPI, PLOT_SIZE[1] / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    money = currency or ""
    for plugin_id, points in curves.items():
        xs, ys = _parse_points(points)
        if not xs:
            ax.plot([], [], linestyle="none", label=f"{plugin_id}: no trades in this window")
            continue
        drawdown = (drawdowns or {}).get(plugin_id, 0.0)
        # matplotlib converts datetimes through its units registry; its type stubs do not say so
        (line,) = ax.step(xs, ys, where="post", linewidth=1.2,  # type: ignore[arg-type]
                          label=f"{plugin_id} ({ys[-1]:+,.2f}{' ' + money if money else ''}; "
                                f"max DD {drawdown:,.2f})")
        _mark_drawdown(ax, xs, ys, line.get_color())
    ax.legend(loc="best", fontsize="small")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:,.0f}" if _wide(ax) else f"{value:,.2f}"))
    ax.set(title=title, xlabel="close time (UTC)", ylabel=f"cumulative PnL{f' ({money})' if money else ''}")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    _save(fig, path)
    return path


def _wide(ax: Axes) -> bool:
    low, high = ax.get_ylim()
    return bool(high - low >= 100)


def _mark_drawdown(ax: Axes, xs: list[datetime], ys: list[float], color: object) -> None:
    """A dotted line from the peak to the trough of the largest drawdown, with a marker at each end."""
    peak_i = trough_i = best_i = 0
    worst = 0.0
    for i, y in enumerate(ys):
        if y > ys[best_i]:
            best_i = i
        if ys[best_i] - y > worst:
            worst, peak_i, trough_i = ys[best_i] - y, best_i, i
    if worst > 0:
        ax.plot([xs[peak_i], xs[trough_i]], [ys[peak_i], ys[trough_i]],  # type: ignore[arg-type]
                linestyle=":", marker="v", markersize=5, color=color, linewidth=1.0)


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
