"""The fixed edge-case rows every generated legacy file starts with, whatever its size."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, tzinfo

from .legacy_bulk import EPOCH, SYMBOLS

__all__ = ["edge_row_set", "wall_clock"]

# ---------------------------------------------------------------------------------------------------------------
# Edge cases: the first rows of every table, present whatever the size.


def _sp(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


def wall_clock(zone: tzinfo) -> Callable[[datetime], str]:
    """isoformat() of an instant as the bot wrote it: naive wall-clock time in `zone`, whole seconds."""
    return lambda t: t.astimezone(zone).strftime("%Y-%m-%dT%H:%M:%S")


def _closed_at(close: datetime, fmt: Callable[[datetime], object]) -> dict[str, object]:
    return {"open_time": fmt(close - timedelta(hours=1)), "close_time": fmt(close)}


def _edge_trade(
    n: int, opened: datetime, trade_id: object, logic: str | None, over: Mapping[str, object]
) -> dict[str, object]:
    by_name = {s[0]: s for s in SYMBOLS}
    name, _, base, pip, pipval, digits, _, _ = by_name.get(str(over.get("symbol")), SYMBOLS[n % len(SYMBOLS)])
    direction = str(over.get("direction", "buy" if n % 2 else "sell"))
    sign, win = (1 if direction == "buy" else -1), n % 3 != 0
    entry = round(base * (1 + n / 1000), digits)
    row: dict[str, object] = {
        "id": n, "trade_id": trade_id, "symbol": name, "entry_price": entry,
        "exit_price": round(entry + sign * (30 if win else -20) * pip, digits),
        "sl_price": round(entry - sign * 20 * pip, digits), "tp_price": round(entry + sign * 30 * pip, digits),
        "lot_size": 0.1, "direction": direction, "strategy": "ZepixPremium",
        "pnl": round((30 if win else -20) * pipval * 0.1, 2), "commission": -0.7, "swap": 0.0, "comment": "order A",
        "status": "closed", "open_time": _sp(opened), "close_time": _sp(opened + timedelta(hours=2)),
        "chain_id": None, "chain_level": 1, "is_re_entry": 0, "order_type": "TP_TRAIL", "profit_chain_id": None,
        "profit_level": 0, "session_id": None, "sl_adjusted": 0, "original_sl_distance": round(20 * pip, digits),
        "logic_type": logic, "base_lot_size": 0.08, "final_lot_size": 0.1, "base_sl_pips": 20.0,
        "final_sl_pips": 20.0, "lot_multiplier": 1.25, "sl_multiplier": 1.0,
    }
    row.update(over)
    return row


def _edge_trades(ref: datetime, _iso: Callable[[datetime], str]) -> list[dict[str, object]]:
    mid = ref - timedelta(days=400)
    epoch = int((mid - EPOCH).total_seconds())
    shared = {"symbol": "EURUSD", "direction": "buy", "session_id": "SES-SHARED", "profit_chain_id": "PB-SHARED",
              "chain_id": "RC-SHARED"}
    open_row = {"status": "open", "close_time": None, "exit_price": None, "pnl": 0.0}
    specs: list[tuple[object, str | None, Mapping[str, object]]] = [
        ("E-C1-001", "combinedlogic-1", shared),
        ("E-C2-001", "combinedlogic-2", {**shared, "chain_level": 2, "is_re_entry": 1, "profit_level": 1}),
        ("E-C3-001", "combinedlogic-3", {}), ("E-L1-001", "LOGIC1", {}), ("E-L2-001", "LOGIC2", {}),
        ("E-L3-001", "LOGIC3", {}), ("E-LT-NULL", None, {}), ("E-LT-EMPTY", "", {}), ("E-LT-LOWER", "logic1", {}),
        ("E-LT-LSPACE", " LOGIC1", {}), ("E-LT-TSPACE", "LOGIC1 ", {}), ("E-LT-UPPER", "COMBINEDLOGIC-1", {}),
        ("E-LT-UNKNOWN", "combinedlogic-9", {}),
        ("E-DUP-1", "LOGIC2", {**open_row, "symbol": "AUDUSD"}),  # saved open, then again closed
        ("E-DUP-1", "LOGIC2", {"symbol": "AUDUSD"}),
        ("E-XPLUG-1", "combinedlogic-1", {"symbol": "USDCAD"}), ("E-XPLUG-1", "LOGIC2", {"symbol": "USDCAD"}),
        (None, "LOGIC3", {}), (None, "combinedlogic-2", {}),
        (4242, "LOGIC1", {}),  # bound as an int; TEXT affinity stores it as the text '4242'
        ("E-BLOB-COMMENT", "combinedlogic-1", {"comment": b"\x00\xffMT5\x01"}),
        ("E-PNL-NA", "LOGIC1", {"pnl": "n/a"}),
        ("E-NEG-ZERO", "combinedlogic-2", {"pnl": -0.0}),  # SQLite stores a REAL -0.0 as 0.0
        ("E-BIG-REAL", "combinedlogic-3", {"tp_price": 1e308}),
        ("E-17-DIGITS", "LOGIC3", {"pnl": 0.1 + 0.2}),
        ("E-BOOL-TRUE", "LOGIC1", {"is_re_entry": "true"}), ("E-BOOL-NULL", "LOGIC2", {"is_re_entry": None}),
        ("E-TS-ISO", "combinedlogic-1", _closed_at(mid, _iso)),
        ("E-TS-FRAC", "LOGIC2", _closed_at(mid, lambda t: _iso(t).replace("T", " ") + ".250000")),
        ("E-TS-ISO-FRAC", "combinedlogic-3", _closed_at(mid, lambda t: _iso(t) + ".123456")),
        ("E-TS-EPOCH", "LOGIC3", {"open_time": epoch - 3600, "close_time": epoch}),
        ("E-RECENT-SP", "LOGIC1", _closed_at(ref - timedelta(days=2), _sp)),
        ("E-RECENT-ISO", "combinedlogic-2", _closed_at(ref - timedelta(days=5), _iso)),
        ("E-RECENT-ISO-FRAC", "LOGIC3", _closed_at(ref - timedelta(days=10), lambda t: _iso(t) + ".5")),
        ("E-RECENT-29D23H", "combinedlogic-1", _closed_at(ref - timedelta(days=29, hours=23), _sp)),
        ("E-RECENT-OUT-ISO", "combinedlogic-1", _closed_at(ref - timedelta(days=30, hours=2), _iso)),
        ("E-OPEN-RECENT", "LOGIC2", {**open_row, "open_time": _sp(ref - timedelta(hours=3))}),
    ]
    return [_edge_trade(n, mid + timedelta(hours=6 * n), tid, lt, over) for n, (tid, lt, over) in enumerate(specs, 1)]


def _rows(columns: str, values: Iterable[tuple[object, ...]]) -> list[dict[str, object]]:
    names = columns.split()
    return [dict(zip(names, v, strict=True)) for v in values]


def edge_row_set(ref: datetime, _iso: Callable[[datetime], str]) -> dict[str, list[dict[str, object]]]:
    m = ref - timedelta(days=400)
    t = [_sp(m + timedelta(hours=h)) for h in range(12)]
    epoch = int((m - EPOCH).total_seconds())
    return {
        "trades": _edge_trades(ref, _iso),
        "reentry_chains": _rows(
            "chain_id symbol direction original_entry original_sl_distance max_level_reached total_profit status "
            "created_at completed_at",
            [("RC-SHARED", "EURUSD", "buy", 1.0861, 0.002, 2, 37.0, "completed", t[1], t[3]),
             ("RC-ORPHAN", "GBPUSD", "sell", 1.2711, 0.0025, 1, -20.0, "stopped", t[2], t[4])]),
        "sl_events": _rows(
            "trade_id symbol sl_price original_entry hit_time recovery_attempted recovery_successful",
            [("E-XPLUG-1", "USDCAD", 1.3821, 1.3818, t[5], 1, 0),
             ("E-DUP-1", "AUDUSD", 0.6583, 0.6586, t[6], "true", None),
             ("E-L1-001", "AUDUSD", 0.6590, 0.6576, epoch, 0, 0),
             ("E-GONE-SL", "EURUSD", 1.0801, 1.0821, t[7], 1, 1),
             (None, "XAUUSD", 2041.5, 2043.5, t[8], 0, None)]),
        "tp_reentry_events": _rows(
            "chain_id symbol tp_level tp_price reentry_price sl_reduction_percent pnl timestamp",
            [("RC-SHARED", "EURUSD", 1, 1.0891, 1.0889, 30.0, 30.0, t[2]),
             ("RC-SHARED", "EURUSD", 2, 1.0921, 1.0918, 51.0, 7.0, t[3]),
             ("RC-ORPHAN", "GBPUSD", 1, 1.2681, 1.2684, 30.0, 18.0, t[4]),
             ("RC-GONE", "USDJPY", 1, 151.2, 151.1, 30.0, 13.4, t[5])]),
        "reversal_exit_events": _rows(
            "trade_id symbol exit_price exit_signal pnl timestamp",
            [("E-XPLUG-1", "USDCAD", 1.3841, "bearish_reversal", 14.7, t[6]),
             ("E-C3-001", "USDJPY", 150.75, "bullish_reversal", 20.1, t[7]),
             ("E-GONE-REV", "GBPJPY", 191.2, "bearish_reversal", 9.9, t[8])]),
        "system_state": _rows(
            "key value updated_at",
            [("bot_status", "running", _sp(ref)), ("config_version", "3.2.1", t[0]), ("daily_pnl", "123.45", _sp(ref)),
             ("last_signal_time", _iso(ref - timedelta(hours=2)), _sp(ref)), ("risk_tier", "5000", t[1])]),
        **_edge_group_rows(t),
    }


def _edge_group_rows(t: Sequence[str]) -> dict[str, list[dict[str, object]]]:
    """Profit-booking chains and trading sessions: shared, orphan and missing parents."""
    return {
        "trading_sessions": _rows(
            "session_id symbol direction entry_signal exit_reason start_time end_time total_pnl total_trades status "
            "metadata",
            [("SES-SHARED", "EURUSD", "buy", "bullish_alignment", "TP_HIT", t[0], t[4], 37.0, 2, "CLOSED",
              '{"logic_type": "combinedlogic-1"}'),
             ("SES-ORPHAN", "XAUUSD", "sell", "bearish_alignment", None, t[5], None, 0.0, 0, "ACTIVE", None)]),
        "profit_booking_chains": _rows(
            "chain_id symbol direction base_lot current_level total_profit status created_at updated_at",
            [("PB-SHARED", "EURUSD", "buy", 0.08, 1, 37.0, "COMPLETED", t[1], t[4]),
             ("PB-ORPHAN", "XAUUSD", "sell", 0.05, 0, 0.0, "ACTIVE", t[2], t[2])]),
        "profit_booking_orders": _rows(
            "order_id chain_id level profit_target sl_reduction status created_at",
            [("PBO-SHARED-1", "PB-SHARED", 0, 7.0, 0, "CLOSED", t[1]),
             ("PBO-SHARED-2", "PB-SHARED", 1, 14.0, 10, "CLOSED", t[2]),
             ("PBO-ORPHAN-1", "PB-ORPHAN", 0, 7.0, 0, "OPEN", t[2]),
             ("PBO-GONE-1", "PB-GONE", 0, 7.0, 0, "CLOSED", t[3]),  # violates the foreign key
             ("PBO-NULL-1", None, 0, 7.0, 0, "CLOSED", t[3])]),
        "profit_booking_events": _rows(
            "chain_id level profit_booked orders_closed orders_placed timestamp",
            [("PB-SHARED", 0, 7.4, 1, 2, t[2]), ("PB-SHARED", 1, 14.9, 2, 3, t[3]), ("PB-ORPHAN", 0, 6.8, 1, 2, t[3]),
             ("PB-GONE", 0, 7.1, 1, 2, t[4])]),
    }


