"""Typed writes (SPEC 4): each bad value class is refused with a RowError or converted, never stored as a BLOB."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from zepix_store import RowError, Store, Trade
from zepix_store.compat import TradeDatabase

from .conftest import Project, query

P = "v6-logic-01-1min"


@pytest.mark.parametrize(("column", "value"), [
    ("pnl", "n/a"), ("pnl", float("nan")), ("pnl", float("inf")), ("pnl", Decimal("1.5")), ("pnl", b"\x00"),
    ("pnl", [1]), ("pnl", 1 << 70), ("pnl", np.float64("nan")), ("chain_level", 1.5), ("chain_level", "2"),
    ("chain_level", 1 << 64), ("symbol", "\ud800"), ("symbol", 1.5), ("symbol", b"EURUSD"), ("trade_id", 1 << 64),
    ("close_time", "yesterday"), ("close_time", b"2024-01-01"), ("comment", {"a": 1}),
], ids=lambda v: repr(v)[:20])
def test_bad_values_are_refused_naming_table_column_and_value(project: Project, column: str, value: Any) -> None:
    with TradeDatabase(P, project.configs) as db, pytest.raises(RowError, match=f"trades.{column}: .* refused"):
        db.save_trade({"trade_id": "T", column: value})
    assert list(project.data.iterdir()) == []  # refused before the file was touched


@pytest.mark.parametrize(("column", "value", "stored"), [
    ("pnl", np.float64(2.5), ("real", 2.5)), ("pnl", np.int64(3), ("real", 3.0)), ("pnl", 7, ("real", 7.0)),
    ("chain_level", np.int32(4), ("integer", 4)), ("is_re_entry", np.bool_(True), ("integer", 1)),
    ("is_re_entry", False, ("integer", 0)), ("trade_id", 123, ("text", "123")),
    ("trade_id", np.int64(9), ("text", "9")),
    ("close_time", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), ("text", "2024-01-02 03:04:05")),
    ("close_time", date(2024, 1, 2), ("text", "2024-01-02")),
    ("close_time", "2025-10-07T19:52:47.285408", ("text", "2025-10-07T19:52:47.285408")),
], ids=lambda v: repr(v)[:24])
def test_values_are_converted_to_their_columns_form(project: Project, column: str, value: Any,
                                                    stored: tuple[str, Any]) -> None:
    with TradeDatabase(P, project.configs) as db:
        db.save_trade({"trade_id" if column != "trade_id" else "symbol": "T", column: value})
        path = db.path
    assert query(path, f"SELECT typeof({column}), {column} FROM trades") == [stored]


def test_a_naive_datetime_is_in_the_store_yaml_zone(project: Project) -> None:
    (project.configs / "store.yaml").write_text(
        (project.configs / "store.yaml").read_text().replace("timezone: local", "timezone: Europe/Berlin"))
    with TradeDatabase(P, project.configs) as db:
        db.save_trade({"trade_id": "T", "close_time": datetime(2024, 7, 1, 12, 0)})
        path = db.path
    assert query(path, "SELECT close_time FROM trades") == [("2024-07-01 10:00:00",)]


async def test_plugin_store_takes_the_bots_model_and_writes_only_the_set_fields_of_a_trade(project: Project) -> None:
    class BotTrade:
        def __init__(self) -> None:
            self.trade_id, self.entry, self.sl, self.tp, self.lot_size = 42, 1.1, 1.0, 1.2, 0.5
            self.status, self.strategy, self.v3_metadata = "open", "LOGIC1", {"ignored": True}

        def model_dump(self) -> dict[str, Any]:
            return dict(vars(self))

    async with Store.open(project.configs) as store:
        db = store.for_plugin(P)
        await db.save_trade(BotTrade())
        await db.save_trade(Trade(trade_id="42", status="closed", pnl=5))
        row = await db.get_trade("42")
    assert row is not None
    assert (row["entry_price"], row["sl_price"], row["tp_price"], row["strategy"]) == (1.1, 1.0, 1.2, "LOGIC1")
    assert (row["status"], row["pnl"], row["base_lot_size"], row["final_lot_size"]) == ("closed", 5.0, 0.5, 0.5)


async def test_system_state_round_trips_through_plugin_store(project: Project) -> None:
    async with Store.open(project.configs) as store:
        db = store.for_plugin(P)
        for value in (False, True, 0, 1.5, "False", None, [1, 2], {"k": "v"}):
            await db.set_system_state("k", value)
            got = await db.get_system_state("k", "missing")
            assert got == value and type(got) is type(value)
