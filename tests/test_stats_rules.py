"""The money rules a trader relies on: unpriced trades, a pnl of 0, numbers in JSON/CSV, exact window edges, plots.

Legacy values the typed API would refuse (NULL, text, infinities in the REAL column) are written with plain
sqlite3, as old bot versions left them; the figures are checked through the stats command.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Project, run_cli
from zepix_store import Store, Trade, plugin_store
from zepix_store import stats as stats_command
from zepix_store.ops import stats

W, L, E = "v6-logic-01-1min", "v6-logic-02-5min", "v6-logic-04-1h"
FMT = "%Y-%m-%d %H:%M:%S"
INF = float("inf")
# (trade_id, pnl, close time): what an old bot left in one plugin's file
ROUGH_HISTORY = [
    ("r1", 10.1, "2024-01-01 10:00:00"),
    ("r2", -4.2, "2024-01-02 10:00:00"),
    ("r3", 0.0, "2024-01-03 10:00:00"),     # break-even: neither a win nor a loss, but priced
    ("r4", None, "2024-01-04 10:00:00"),    # closed without a pnl
    ("r5", "n/a", "2024-01-05 10:00:00"),   # text in the REAL column
    ("r6", INF, "2024-01-06 10:00:00"),     # one inf and one -inf once blanked every money figure
    ("r7", -INF, "2024-01-07 10:00:00"),
    ("r8", 0.25, "2024-01-08 10:00:00"),
]


def write_raw(project: Project, plugin_id: str, rows: list[tuple[str, object, object]]) -> None:
    """Create the plugin's file through the store, then add closed trades as plain sqlite3 rows."""
    async def create() -> None:
        async with Store.open(project.configs) as store:
            await store.for_plugin(plugin_id).save_trade(Trade(trade_id="seed", status="open"))
    asyncio.run(create())
    conn = sqlite3.connect(project.isolated_db(plugin_id))
    conn.executemany("INSERT INTO trades (plugin_id, trade_id, status, pnl, close_time) VALUES (?, ?, 'closed', ?, ?)",
                     [(plugin_id, *row) for row in rows])
    conn.commit()
    conn.close()


def strict_json(text: str) -> Any:
    def refuse(name: str) -> None:
        raise AssertionError(f"JSON holds {name}, which is not a number")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def rough(project: Project) -> Project:
    write_raw(project, W, ROUGH_HISTORY)
    write_raw(project, L, [("w1", 5.0, "2024-01-01 10:00:00"), ("w2", 7.5, "2024-01-02 10:00:00")])  # wins only
    return project


def test_unpriced_trades_are_counted_apart_and_left_out_of_every_money_figure(rough: Project) -> None:
    done = run_cli("stats", "--json", "--plugin", W, "--plugin", L, config=rough)

    assert done.returncode == 0, done.stderr
    assert not re.search(r"inf|nan", done.stdout, re.IGNORECASE), done.stdout
    doc = strict_json(done.stdout)
    w, only_wins = doc["plugins"]
    assert {k: w[k] for k in ("total_trades", "unpriced_trades", "winning_trades", "losing_trades")} == {
        "total_trades": 8, "unpriced_trades": 4, "winning_trades": 2, "losing_trades": 1}
    # priced: 10.1, -4.2, 0.0, 0.25 -> money figures rounded to cents, written as numbers
    assert {k: w[k] for k in ("win_rate", "total_pnl", "avg_pnl", "best_trade", "worst_trade", "gross_profit",
                              "gross_loss", "max_drawdown", "profit_factor")} == {
        "win_rate": 50.0, "total_pnl": 6.15, "avg_pnl": 1.54, "best_trade": 10.1, "worst_trade": -4.2,
        "gross_profit": 10.35, "gross_loss": 4.2, "max_drawdown": 4.2, "profit_factor": 2.4643}
    assert '"total_pnl": 6.15,' in done.stdout  # not 6.149999999999999
    assert only_wins["profit_factor"] is None and only_wins["gross_loss"] == 0.0  # no loss: null, never "inf"


def test_csv_numbers_are_numbers(rough: Project) -> None:
    done = run_cli("stats", "--csv", "--plugin", W, "--plugin", L, "--plugin", E, config=rough)

    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    for row in rows:
        for key, value in row.items():
            if key not in ("plugin_id", "database", "source") and value != "":
                assert math.isfinite(float(value)), (row["plugin_id"], key, value)
    by_id = {r["plugin_id"]: r for r in rows}
    assert (by_id[W]["total_pnl"], by_id[W]["unpriced_trades"], by_id[W]["winning_trades"]) == ("6.15", "4", "2")
    assert by_id[L]["profit_factor"] == "" and by_id[E]["win_rate"] == ""


def test_the_table_shows_no_nan_and_names_the_unpriced_trades(rough: Project) -> None:
    done = run_cli("stats", "--plugin", W, config=rough)

    assert done.returncode == 0, done.stderr
    assert "nan" not in done.stdout.lower()
    row = next(line for line in done.stdout.splitlines() if line.startswith(W))
    assert row.split()[1:6] == ["8", "2", "1", "50.00", "6.15"]
    assert f"note: {W}: 4 closed trades with a pnl that is NULL, not a number or not finite" in done.stdout


def test_json_window_says_until_as_given(rough: Project) -> None:
    doc = strict_json(run_cli("stats", "--json", "--plugin", W, "--since", "2024-01-02", "--until", "2024-01-07", config=rough).stdout)
    assert doc["window"] == {"since": "2024-01-02 00:00:00", "until": "2024-01-07 23:59:59", "days": None}
    assert doc["plugins"][0]["total_trades"] == 6


# --- exact window edges, with the clock frozen ---------------------------------------------------------------

FROZEN = datetime(2024, 6, 30, 12, 0, 0, tzinfo=UTC)


class FrozenDatetime(datetime):
    """`datetime.now()` stands still at FROZEN: a window edge can be tested to the second."""

    @classmethod
    def now(cls, tz: Any = None) -> FrozenDatetime:  # type: ignore[override]
        return cls.fromtimestamp(FROZEN.timestamp(), tz)


EDGE = FROZEN - timedelta(days=30)
EDGE_TRADES = [("edge", 1.0, EDGE.strftime(FMT)),                                     # exactly 30 days: in
               ("edge-T", 2.0, EDGE.strftime("%Y-%m-%dT%H:%M:%S")),                    # the legacy form: in
               ("early", 4.0, (EDGE - timedelta(seconds=1)).strftime(FMT)),            # one second more: out
               ("early-T", 8.0, (EDGE - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S"))]


def test_stats_days_window_includes_a_trade_closed_exactly_n_days_ago(
        project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    write_raw(project, W, EDGE_TRADES)
    monkeypatch.setattr(stats, "datetime", FrozenDatetime)

    code = stats_command.main(["--config", str(project.configs), "--json", "-q", "--plugin", W, "--days", "30"])

    assert code == 0
    (got,) = json.loads(capsys.readouterr().out)["plugins"]
    assert (got["total_trades"], got["total_pnl"]) == (2, 3.0)


async def test_get_trades_30_days_includes_a_trade_closed_exactly_30_days_ago(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    await asyncio.to_thread(write_raw, project, W, EDGE_TRADES)
    monkeypatch.setattr(plugin_store, "datetime", FrozenDatetime)

    async with Store.open(project.configs) as store:
        got = await store.for_plugin(W).get_trades(days=30)

    assert sorted(t["trade_id"] for t in got) == ["edge", "edge-T"]


# --- the equity plot ------------------------------------------------------------------------------------------


def svg_texts(path: Path) -> list[str]:
    """The text elements of an SVG written with text kept as text."""
    return [re.sub(r"\s+", " ", t).strip() for t in re.findall(r"<text[^>]*>(.*?)</text>", path.read_text(), re.S)]


def test_plot_has_separators_currency_drawdown_and_every_plugin(project: Project, tmp_path: Path) -> None:
    write_raw(project, W, [("p1", 1500.0, "2024-01-01 10:00:00"), ("p2", -700.0, "2024-01-02 10:00:00"),
                           ("p3", 2600.0, "2024-01-03 10:00:00")])
    out = tmp_path / "equity.svg"

    done = run_cli("stats", "--plugin", W, "--plugin", L, "--plot", str(out), "--currency", "USD", "-q", config=project)

    assert done.returncode == 0, done.stderr
    texts = svg_texts(out)
    assert "cumulative PnL (USD)" in texts
    assert any(re.fullmatch(r"\d,\d{3}", t) for t in texts), texts  # y ticks such as 1,000 and 3,000
    assert f"{W} (+3,400.00 USD; max DD 700.00)" in texts
    assert f"no trades in this window: {L}" in texts  # named in the note under the axes


@pytest.mark.parametrize("name", ["equity.jpg", "equity", "equity.png.txt"])
def test_plot_refuses_a_name_that_is_not_png_or_svg(project: Project, tmp_path: Path, name: str) -> None:
    done = run_cli("stats", "--plot", str(tmp_path / name), config=project)

    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"zepix-store stats: error: --plot: {tmp_path / name} must end in .png or .svg (the format is taken from "
        "the name)"]
    assert not (tmp_path / name).exists() and not list(tmp_path.glob(".*"))


# Saved in id order T1..T4, closed in the order T1, T2, T4, T3: by close time the equity runs 50, 30, 10, 110
# (max drawdown 40); read in id order it would run 50, 30, 130, 110 (max drawdown 20).
OUT_OF_ORDER = [("T1", 50.0, "2024-02-01 10:00:00"), ("T2", -20.0, "2024-02-02T05:00:00Z"),
                ("T3", 100.0, 1706954400), ("T4", -20.0, "2024/02/02 12:00:00")]  # 2024-02-03 10:00 UTC; naive


@pytest.mark.parametrize("window", [(), ("--since", "2024-01-01")], ids=["all-time", "window"])
def test_max_drawdown_follows_close_time_not_row_order(project: Project, window: tuple[str, ...]) -> None:
    write_raw(project, W, OUT_OF_ORDER)
    done = run_cli("stats", "--json", "--plugin", W, *window, config=project)
    assert done.returncode == 0, done.stderr
    got = strict_json(done.stdout)["plugins"][0]
    assert (got["total_trades"], got["total_pnl"], got["max_drawdown"]) == (4, 110.0, 40.0)
