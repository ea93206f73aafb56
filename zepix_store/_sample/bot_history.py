"""Legacy `trading_bot.db` files shaped like the ones the real bot writes (BOT_INTERFACE.md section 3).

Each signal opens order A (TP_TRAIL, its re-entry chain) and order B (PROFIT_TRAIL, its re-entry chain and its
profit-booking chain), both in one trading session, with `strategy` carrying the logic and `logic_type` NULL.
SL-hunt recoveries, TP continuations, exit continuations and profit recoveries follow: they carry only the
chain_id (or profit_chain_id) they continue, is_re_entry = 1 and no session. Every trade is saved twice, an
open snapshot (pnl NULL) at entry and the closed row at exit, with one integer MT5 ticket stored as text; a
trade still running has only its snapshot. Times are naive local ISO with microseconds, as
`datetime.now().isoformat()` wrote them, in the zone given. Seeded: the same arguments give the same file.

Planted on purpose: a simulation ticket (999999) reused by two closed trades, a chain two logics opened
(its recovery is ambiguous), manual trades no mapping knows; `with_edge_cases` first writes the edge rows of
`legacy` (odd logic_types, storage classes, timestamp forms, orphans). `older=True` is an older bot's
file: six tables, no logic_type (nor the profit-booking and session columns), no order B.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

from ..timefmt import LOCAL, resolve_zone
from . import legacy

__all__ = ["LOGICS", "OLDER_TABLES", "BotHistory", "build_bot_history"]

LOGICS = ("LOGIC1", "LOGIC2", "LOGIC3", "combinedlogic-1", "combinedlogic-2", "combinedlogic-3")
RE_ENTRIES = ("SL_HUNT_RECOVERY", "AUTONOMOUS_TP_CONT", "AUTO", "PROFIT_RECOVERY")
OLDER_TABLES = ("trades", "reentry_chains", "sl_events", "tp_reentry_events", "reversal_exit_events", "system_state")
OLDER_MISSING_COLUMNS = ("logic_type", "profit_chain_id", "profit_level", "session_id")
SIM_TICKET = 999999
# (symbol, price, pip, USD per pip per lot, digits)
_SYMBOLS = (("EURUSD", 1.0850, 0.0001, 10.0, 5), ("GBPUSD", 1.2650, 0.0001, 10.0, 5),
            ("XAUUSD", 2050.0, 0.1, 10.0, 2), ("USDJPY", 150.00, 0.01, 6.7, 3))


@dataclass(slots=True)
class _Trade:
    ticket: int
    symbol: tuple[str, float, float, float, int]
    direction: str
    strategy: str
    order_type: str
    opened: datetime
    closed: datetime | None
    pips: float  # result in pips (0 while open)
    lot: float
    chain_id: str | None = None
    chain_level: int = 1
    profit_chain_id: str | None = None
    profit_level: int = 0
    session_id: str | None = None
    is_re_entry: int = 0

    @property
    def pnl(self) -> float | None:
        return None if self.closed is None else round(self.pips * self.symbol[3] * self.lot, 2)


@dataclass(slots=True)
class BotHistory:
    """What build_bot_history wrote: rows per table, trades (not rows) per strategy, signals and the file."""

    path: Path
    rows: dict[str, int]
    signals: int
    trades_by_strategy: dict[str, int] = field(default_factory=dict)


class _Writer:
    """Collects one history: trades as timed row events, child rows per table."""

    def __init__(self, rng: random.Random, wall: tzinfo, older: bool) -> None:
        self.rng, self.zone, self.older = rng, wall, older
        self.trades: list[_Trade] = []
        self.children: dict[str, list[dict[str, object]]] = {}
        self.ticket = 50_210_000

    def local(self, moment: datetime | None) -> str | None:
        """The bot's own stamp: naive local ISO with microseconds."""
        return None if moment is None else moment.astimezone(self.zone).replace(tzinfo=None).isoformat()

    def new_ticket(self) -> int:
        self.ticket += self.rng.randint(1, 40)
        return self.ticket

    def add(self, table: str, **row: object) -> None:
        self.children.setdefault(table, []).append(row)

    def trade(self, **fields: object) -> _Trade:
        trade = _Trade(**fields)  # type: ignore[arg-type]
        self.trades.append(trade)
        return trade


def build_bot_history(path: str | os.PathLike[str], *, trades: int = 2000, seed: int = 7, now: datetime | None = None,
                      zone: str = LOCAL, older: bool = False, logics: Sequence[str] = LOGICS,
                      with_edge_cases: bool = True, days: int = 120) -> BotHistory:
    """Write a new legacy file at `path` with about `trades` trade rows of bot-shaped history.

    Raises:
        FileExistsError: `path` exists.
    """
    target = Path(path)
    ref = (now or datetime.now(UTC)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if now is None:
        ref += timedelta(hours=1)  # rounded up: every row stays in the past, two builds in one hour agree
    writer = _Writer(random.Random(seed), resolve_zone(zone), older)
    edge = {} if older or not with_edge_cases else legacy.edge_rows(ref, zone)
    signals = _simulate(writer, ref, max(1, trades - len(edge.get("trades", []))), logics, days)
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        rows = _write(target, writer, edge, ref)
    except BaseException:
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        raise
    by_strategy: dict[str, int] = {}
    for t in writer.trades:
        by_strategy[t.strategy] = by_strategy.get(t.strategy, 0) + 1
    return BotHistory(target, rows, signals, dict(sorted(by_strategy.items())))


# --- the simulation ---------------------------------------------------------------------------------------------


def _simulate(w: _Writer, ref: datetime, rows_wanted: int, logics: Sequence[str], days: int) -> int:
    start = ref - timedelta(days=days)
    per_signal = 4 if w.older else 8  # trade rows a signal makes, about (order A alone in an older file)
    step = timedelta(days=days) / max(1, rows_wanted // per_signal)
    signal, moment = 0, start
    while 2 * len(w.trades) < rows_wanted and moment < ref - timedelta(hours=2):
        logic = "MANUAL" if w.rng.random() < 0.03 else w.rng.choice(list(logics))
        _signal(w, signal, moment, ref, logic)
        signal += 1
        moment += step * w.rng.uniform(0.5, 1.5)
    _planted(w, ref, logics)
    return signal


def _signal(w: _Writer, n: int, opened: datetime, ref: datetime, logic: str) -> None:
    rng = w.rng
    symbol, direction = rng.choice(_SYMBOLS), rng.choice(("buy", "sell"))
    opened += timedelta(microseconds=rng.randint(1, 999_999))
    session = None if w.older or logic == "MANUAL" else f"{symbol[0]}_{opened:%Y%m%d_%H%M%S}_{n}"
    lot = round(rng.choice((0.05, 0.1, 0.2)), 2)
    a = _order(w, symbol, direction, logic, "TP_TRAIL", opened, ref, lot, session)
    if logic != "MANUAL":
        _chain(w, a, ref)
    if not w.older and logic != "MANUAL":
        b = _order(w, symbol, direction, logic, "PROFIT_TRAIL", opened + timedelta(seconds=1), ref, lot, session)
        b.profit_chain_id = f"PB_{symbol[0]}_{b.ticket}"
        _chain(w, b, ref)
        _profit_chain(w, b, ref)
    if session is not None:
        w.add("trading_sessions", session_id=session, symbol=symbol[0], direction=direction,
              entry_signal=f"{logic}_{direction.upper()}", start_time=w.local(opened), status="ACTIVE",
              metadata=json.dumps({"logic": logic, "dual_orders": True}))


def _order(w: _Writer, symbol: tuple[str, float, float, float, int], direction: str, strategy: str, kind: str,
           opened: datetime, ref: datetime, lot: float, session: str | None, **extra: object) -> _Trade:
    rng = w.rng
    closed: datetime | None = opened + timedelta(minutes=rng.randint(5, 900), microseconds=rng.randint(0, 999_999))
    if closed is not None and closed >= ref:
        closed = None  # still running: only its open snapshot exists
    pips = 0.0 if closed is None else round(rng.uniform(12, 45) if rng.random() < 0.58 else -rng.uniform(8, 25), 1)
    return w.trade(ticket=w.new_ticket(), symbol=symbol, direction=direction, strategy=strategy, order_type=kind,
                   opened=opened, closed=closed, pips=pips, lot=lot, session_id=session, **extra)


def _chain(w: _Writer, first: _Trade, ref: datetime) -> None:
    """The re-entry chain of `first`: SL-hunt recovery after a loss, TP or exit continuations after a win."""
    chain = first.chain_id = f"RC_{first.symbol[0]}_{first.ticket}"
    last, level, events = first, 1, 0
    while last.closed is not None and level < 4 and w.rng.random() < 0.5:
        if last.pips < 0:
            kind = "SL_HUNT_RECOVERY"
            w.add("sl_events", trade_id=last.ticket, symbol=last.symbol[0], sl_price=_price(last, -20),
                  original_entry=_price(last, 0), hit_time=w.local(last.closed), recovery_attempted=1,
                  recovery_successful=None)
        else:
            kind = "AUTONOMOUS_TP_CONT" if w.rng.random() < 0.8 else "AUTO"
        level += 1
        last = _order(w, last.symbol, last.direction, kind, last.order_type, last.closed + timedelta(seconds=30),
                      ref, last.lot, None, chain_id=chain, chain_level=level, is_re_entry=1)
        if kind == "SL_HUNT_RECOVERY":
            w.children["sl_events"][-1]["recovery_successful"] = int(last.pips > 0)
        elif kind == "AUTONOMOUS_TP_CONT":
            events += 1
            w.add("tp_reentry_events", chain_id=chain, symbol=last.symbol[0], tp_level=events,
                  tp_price=_price(last, 30), reentry_price=_price(last, 0), sl_reduction_percent=30.0 + 20 * events,
                  pnl=last.pnl, timestamp=w.local(last.opened))
    trades = [t for t in w.trades if t.chain_id == chain]
    done = all(t.closed is not None for t in trades)
    w.add("reentry_chains", chain_id=chain, symbol=first.symbol[0], direction=first.direction,
          original_entry=_price(first, 0), original_sl_distance=round(20 * first.symbol[2], 5),
          max_level_reached=level, total_profit=round(sum(t.pnl or 0.0 for t in trades), 2),
          status="completed" if done and (last.pnl or 0) > 0 else "active" if not done else "stopped",
          created_at=w.local(first.opened), completed_at=w.local(last.closed) if done else None)
    if last.closed is not None and last.pips > 0 and w.rng.random() < 0.2:
        w.add("reversal_exit_events", trade_id=last.ticket, symbol=last.symbol[0], exit_price=_price(last, last.pips),
              exit_signal="reversal", pnl=last.pnl, timestamp=w.local(last.closed))


def _profit_chain(w: _Writer, b: _Trade, ref: datetime) -> None:
    """Order B's profit booking: levels booked, and a profit recovery that carries only the profit_chain_id."""
    chain, levels = b.profit_chain_id, w.rng.randint(1, 3)
    recovery = None
    if b.closed is not None and b.pips < 0 and w.rng.random() < 0.5:
        recovery = _order(w, b.symbol, b.direction, "PROFIT_RECOVERY", "PROFIT_TRAIL", b.closed + timedelta(seconds=20),
                          ref, b.lot, None, profit_chain_id=chain, profit_level=1, is_re_entry=1)
    for level in range(levels):
        w.add("profit_booking_orders", order_id=f"PBO_{b.ticket}_{level}", chain_id=chain, level=level,
              profit_target=7.0 * 2 ** level, sl_reduction=10 * level, status="CLOSED" if b.closed else "OPEN",
              created_at=w.local(b.opened + timedelta(minutes=level)))
        if b.closed is not None and b.pips > 0:
            w.add("profit_booking_events", chain_id=chain, level=level, profit_booked=round(7.0 * 2 ** level, 2),
                  orders_closed=level + 1, orders_placed=level + 2, timestamp=w.local(b.closed))
    total = (b.pnl or 0.0) + ((recovery.pnl or 0.0) if recovery else 0.0)
    w.add("profit_booking_chains", chain_id=chain, symbol=b.symbol[0], direction=b.direction, base_lot=b.lot,
          current_level=levels - 1, total_profit=round(total, 2), status="COMPLETED" if b.closed else "ACTIVE",
          created_at=w.local(b.opened), updated_at=w.local(b.closed or b.opened))


def _planted(w: _Writer, ref: datetime, logics: Sequence[str]) -> None:
    """A reused simulation ticket and an ambiguous chain, closed a week and two before `ref`."""
    symbol, logic = _SYMBOLS[0], logics[0]
    for days in (14, 13):  # two closed trades of one logic with one ticket: a duplicate conflict to look at
        w.trade(ticket=SIM_TICKET, symbol=symbol, direction="buy", strategy=logic, order_type="TP_TRAIL",
                opened=ref - timedelta(days=days, hours=2), closed=ref - timedelta(days=days, hours=1), pips=10.0,
                lot=0.1)
    if len(logics) < 2:
        return
    chain, opened = "RC_AMBIGUOUS", ref - timedelta(days=7)
    for i, name in enumerate(logics[:2]):  # two logics on one chain: the recovery below cannot be attributed
        w.trade(ticket=w.new_ticket(), symbol=symbol, direction="sell", strategy=name, order_type="TP_TRAIL",
                opened=opened + timedelta(minutes=i), closed=opened + timedelta(hours=1), pips=-12.0, lot=0.1,
                chain_id=chain)
    w.trade(ticket=w.new_ticket(), symbol=symbol, direction="sell", strategy="SL_HUNT_RECOVERY", order_type="TP_TRAIL",
            opened=opened + timedelta(hours=2), closed=opened + timedelta(hours=3), pips=15.0, lot=0.1,
            chain_id=chain, chain_level=2, is_re_entry=1)


def _price(t: _Trade, pips: float) -> float:
    sign = 1 if t.direction == "buy" else -1
    return round(t.symbol[1] + sign * pips * t.symbol[2], t.symbol[4])


# --- the file ---------------------------------------------------------------------------------------------------


def _trade_rows(w: _Writer) -> list[dict[str, object]]:
    """Both saves of every trade, in the order the bot made them: the open snapshot at entry, the row at exit."""
    events: list[tuple[datetime, int, dict[str, object]]] = []
    for n, t in enumerate(w.trades):
        sign = 1 if t.direction == "buy" else -1
        row: dict[str, object] = {
            "trade_id": t.ticket, "symbol": t.symbol[0], "entry_price": _price(t, 0), "sl_price": _price(t, -20),
            "tp_price": _price(t, 30), "lot_size": t.lot, "direction": t.direction, "strategy": t.strategy,
            "status": "open", "open_time": w.local(t.opened), "chain_id": t.chain_id, "chain_level": t.chain_level,
            "is_re_entry": t.is_re_entry, "order_type": t.order_type, "profit_chain_id": t.profit_chain_id,
            "profit_level": t.profit_level, "session_id": t.session_id, "original_sl_distance": 20 * t.symbol[2],
            "logic_type": None, "base_lot_size": t.lot, "final_lot_size": t.lot, "comment": None}
        events.append((t.opened, 2 * n, row))
        if t.closed is not None:
            exit_price = round(_price(t, 0) + sign * t.pips * t.symbol[2], t.symbol[4])
            closed = {**row, "status": "closed", "pnl": t.pnl, "exit_price": exit_price,
                      "close_time": w.local(t.closed), "commission": round(-7 * t.lot, 2), "swap": 0.0}
            events.append((t.closed, 2 * n + 1, closed))
    return [row for _, _, row in sorted(events, key=lambda e: (e[0], e[1]))]


def _write(target: Path, w: _Writer, edge: Mapping[str, list[dict[str, object]]], ref: datetime) -> dict[str, int]:
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.executescript(legacy.LEGACY_SCHEMA)  # before BEGIN: executescript commits what is open
        conn.execute("BEGIN")
        _sessions_closed(w)
        w.add("system_state", key="trading_paused", value="0", updated_at=w.local(ref))
        w.add("system_state", key="simulation_mode", value="False", updated_at=w.local(ref))
        for table, rows in edge.items():
            _insert(conn, table, rows)
        _insert(conn, "trades", _trade_rows(w))
        for table, rows in w.children.items():
            _insert(conn, table, rows)
        if w.older:
            _make_older(conn)
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode=WAL")  # how the bot runs it
        present = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid")]
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in present}
    finally:
        conn.close()


def _sessions_closed(w: _Writer) -> None:
    """Close each session the way the bot does: COMPLETED, its totals recomputed from its closed trades."""
    for session in w.children.get("trading_sessions", []):
        mine = [t for t in w.trades if t.session_id == session["session_id"]]
        closed = [t for t in mine if t.closed is not None]
        if len(closed) == len(mine):
            session.update(status="COMPLETED", end_time=w.local(max(t.closed for t in closed if t.closed)),
                           exit_reason="TP_HIT" if sum(t.pips for t in closed) > 0 else "SL_HIT")
        session.update(total_trades=len(closed), total_pnl=round(sum(t.pnl or 0.0 for t in closed), 2))


def _insert(conn: sqlite3.Connection, table: str, rows: Iterable[Mapping[str, object]]) -> None:
    columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
    conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                     ([row.get(c) for c in columns] for row in rows))


def _make_older(conn: sqlite3.Connection) -> None:
    """An older bot's file: six tables, and trades without the columns later versions added."""
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL").fetchall():
        conn.execute(f"DROP INDEX {name}")  # DROP COLUMN refuses indexed columns; the six-table bot had fewer
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        if name not in OLDER_TABLES:
            conn.execute(f"DROP TABLE {name}")
    for column in OLDER_MISSING_COLUMNS:
        conn.execute(f"ALTER TABLE trades DROP COLUMN {column}")
    for sql in ("CREATE INDEX idx_trades_symbol ON trades(symbol)", "CREATE INDEX idx_trades_status ON trades(status)",
                "CREATE INDEX idx_trades_chain_id ON trades(chain_id)"):
        conn.execute(sql)
