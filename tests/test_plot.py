"""`stats --plot` as a user reads it: the time axis's tick labels, the legend, the note, the drawdown, stderr.

The plot is written as SVG (text kept as text), so what is read here is what the picture says: the texts of the
x tick labels, of the legend and of the note under the axes, and the shapes drawn.
"""

from __future__ import annotations

import asyncio
import json
import re
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import pytest

from tests.helpers import Project, run_cli
from zepix_store import Store, Trade

pytest.importorskip("matplotlib")

W = "v6-logic-01-1min"
SVG = "{http://www.w3.org/2000/svg}"
DAY = r"\d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4}"


def seed(project: Project, closes: list[tuple[float, str]]) -> None:
    """W's closed trades (pnl, UTC close time)."""
    async def save() -> None:
        async with Store.open(project.configs) as store:
            await store.for_plugin(W).save_trades(
                Trade(trade_id=f"t{i}", status="closed", pnl=pnl, close_time=when)
                for i, (pnl, when) in enumerate(closes))
    asyncio.run(save())


def groups(path: Path) -> dict[str, ET.Element]:
    """The SVG's groups by id (matplotlib names them: xtick_1, legend_1, and the gids we give)."""
    return {g.get("id", ""): g for g in ET.parse(path).getroot().iter(f"{SVG}g")}


def texts(element: ET.Element) -> list[str]:
    return [re.sub(r"\s+", " ", "".join(t.itertext())).strip() for t in element.iter(f"{SVG}text")]


def tick_labels(path: Path) -> list[str]:
    """The x tick labels, left to right."""
    found = {int(gid[6:]): g for gid, g in groups(path).items() if re.fullmatch(r"xtick_\d+", gid)}
    return [label for _, g in sorted(found.items()) for label in texts(g)]


def plot(project: Project, out: Path, *args: str) -> dict[str, object]:
    done = run_cli("stats", "--json", "--plot", out, *args, config=project)
    assert done.rc == 0, done.stderr
    doc: dict[str, object] = json.loads(done.stdout)
    return doc


# close times a week apart, and one afternoon: (pnl, close time in UTC)
WEEK = [(1500.0, "2024-01-01 10:00:00"), (-700.0, "2024-01-03 10:00:00"), (2600.0, "2024-01-08 19:55:00")]
AFTERNOON = [(15.0, "2024-01-07 13:05:00"), (-7.0, "2024-01-07 16:40:00"), (26.0, "2024-01-07 19:55:00")]


def test_a_longer_axis_labels_its_ticks_with_day_month_and_year(project: Project, tmp_path: Path) -> None:
    seed(project, WEEK)
    out = tmp_path / "week.svg"
    plot(project, out, "--plugin", W)
    labels = tick_labels(out)
    assert len(labels) >= 2 and all(re.fullmatch(DAY, label) for label in labels), labels
    days = [datetime.strptime(label, "%d %b %Y") for label in labels]
    assert days == sorted(set(days))  # left to right, no day labelled twice
    assert datetime(2024, 1, 1) <= days[0] and days[-1] <= datetime(2024, 1, 9), labels


def test_an_axis_under_two_days_adds_the_time_of_day(project: Project, tmp_path: Path) -> None:
    seed(project, AFTERNOON)
    out = tmp_path / "afternoon.svg"
    plot(project, out, "--plugin", W)
    labels = tick_labels(out)
    assert len(labels) >= 3 and all(re.fullmatch(DAY + r" \d{2}:\d{2}", label) for label in labels), labels
    times = [datetime.strptime(label, "%d %b %Y %H:%M") for label in labels]
    assert times == sorted(set(times))
    assert datetime(2024, 1, 7, 12) <= times[0] and times[-1] <= datetime(2024, 1, 7, 21), labels


def test_plugins_without_trades_are_named_once_in_a_note_not_in_the_legend(project: Project,
                                                                          tmp_path: Path) -> None:
    seed(project, WEEK)
    out = tmp_path / "all.svg"
    doc = plot(project, out, "--currency", "USD")
    plugins = doc["plugins"]
    assert isinstance(plugins, list)
    empty = [p["plugin_id"] for p in plugins if p["total_trades"] == 0]
    assert len(empty) >= 6  # every shipped plugin but W
    found = groups(out)
    assert texts(found["legend_1"]) == [f"{W} (+3,400.00 USD; max DD 700.00)",
                                        "shaded box: each curve's largest drawdown, peak to trough"]
    [note] = texts(found["no-trades"])
    prefix = "no trades in this window: "
    assert note.startswith(prefix)
    assert note[len(prefix):].split(", ") == empty  # each once, in the report's order
    assert not any("no trades" in t for gid, g in found.items() if gid.startswith("legend") for t in texts(g))


def ticks(path: Path, axis: str) -> dict[str, float]:
    """Tick label -> its position in pixels along the axis ('x' or 'y')."""
    return {texts(g)[0]: float(next(g.iter(f"{SVG}use")).get(axis, "nan"))
            for gid, g in groups(path).items() if re.fullmatch(f"{axis}tick_\\d+", gid)}


def test_the_largest_drawdown_is_a_shaded_box_not_a_dotted_line(project: Project, tmp_path: Path) -> None:
    seed(project, WEEK)
    out = tmp_path / "dd.svg"
    plot(project, out, "--plugin", W)
    box = groups(out)[f"drawdown {W}"]
    [shape], [use] = list(box.iter(f"{SVG}path")), list(box.iter(f"{SVG}use"))
    assert re.search(r"fill: #[0-9a-f]{6}; fill-opacity: 0\.2\b", use.get("style", "")), use.get("style")
    corners = [tuple(map(float, pair)) for pair in re.findall(r"([-\d.]+) ([-\d.]+)", shape.get("d", ""))]
    xs, ys = [x for x, _ in corners], [y for _, y in corners]
    x, y = ticks(out, "x"), ticks(out, "y")
    (day1, x1), (day2, x2) = [(datetime.strptime(label, "%d %b %Y"), pos) for label, pos in x.items()][:2]
    per_day, per_unit = (x2 - x1) / ((day2 - day1).days), abs(y["2,000"] - y["1,000"]) / 1000
    # peak (1,500 on Jan 1) to trough (800 on Jan 3): two days wide, 700 high
    assert (max(xs) - min(xs)) / per_day == pytest.approx(2.0, abs=0.01)
    assert (max(ys) - min(ys)) / per_unit == pytest.approx(700.0, abs=1.0)
    assert "stroke-dasharray" not in out.read_text()  # no dotted or dashed line anywhere


def test_stats_plot_writes_nothing_on_stderr_even_on_matplotlibs_first_run(project: Project,
                                                                          tmp_path: Path) -> None:
    seed(project, WEEK)
    out = tmp_path / "first.png"
    fresh = tmp_path / "mpl"  # an empty matplotlib config folder: it builds its font cache (and logs that)
    done = run_cli("stats", "--plot", out, config=project, env={"MPLCONFIGDIR": str(fresh)})
    assert done.rc == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.rstrip().splitlines()[-1] == f"equity curves written to {out}"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any(fresh.iterdir())  # matplotlib did build its cache in this run
