"""Equity curves as a PNG: the optional extra `pip install 'zepix-store[plot]'` (matplotlib).

matplotlib is imported only here and only when a plot is asked for, so the store never depends on it. The figure
is drawn on an Agg canvas (no pyplot, no display, no global state) and written under a temporary name first, so a
failed run never leaves a half-written PNG under the name asked for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PLOT_SIZE = (1200, 675)  # pixels
DPI = 100
INSTALL_HINT = "pip install 'zepix-store[plot]'"
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


def plot_equity_curves(curves: Mapping[str, Sequence[CurvePoint]], path: Path, title: str) -> Path:
    """Draw each plugin's cumulative PnL over close time into the PNG file `path`; return `path`."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(PLOT_SIZE[0] / DPI, PLOT_SIZE[1] / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    drawn = 0
    for plugin_id, points in curves.items():
        xs, ys = _parse_points(points)
        if xs:
            # matplotlib converts datetimes through its units registry; its type stubs do not say so
            ax.step(xs, ys, where="post", linewidth=1.2,  # type: ignore[arg-type]
                    label=f"{plugin_id} ({ys[-1]:+,.2f})")
            drawn += 1
    if drawn:
        ax.legend(loc="best", fontsize="small")
    else:
        ax.text(0.5, 0.5, "no closed trades with a PnL in this window", ha="center", va="center",
                transform=ax.transAxes)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set(title=title, xlabel="close time (UTC)", ylabel="cumulative PnL")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    _save(fig, path)
    return path


def _save(fig: Figure, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fig.savefig(tmp, format="png", dpi=DPI)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
