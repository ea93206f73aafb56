"""A plugin handle's route, resolved at each call, and the gate that holds its calls while the plugin moves.

`Store.move_plugin` closes the gate: new calls of that plugin wait, the calls in flight finish, the move runs,
the route changes, the gate opens, and the waiting calls go to the new place. Other plugins never wait.
A move made by another process is followed through the route itself and the writers' lock each write holds
(route_follow.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

from .backend.base import Database, Operations

__all__ = ['MoveGate', 'RoutedDatabase', 'T']

T = TypeVar("T")


class MoveGate:
    """Counts a plugin's calls in flight; `closed()` waits for them and holds new ones until it ends."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._active = 0
        self._moving = asyncio.Lock()

    @asynccontextmanager
    async def call(self) -> AsyncIterator[None]:
        while not self._open.is_set():
            await self._open.wait()
        self._active += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._active -= 1
            if not self._active:
                self._idle.set()

    @asynccontextmanager
    async def closed(self) -> AsyncIterator[None]:
        async with self._moving:  # one move of a plugin at a time
            self._open.clear()
            try:
                await self._idle.wait()
                yield
            finally:
                self._open.set()


class RoutedDatabase(Database):
    """A Database that resolves its file at each call, through the plugin's gate: `route()` to write,
    `read_route()` to read (which may be a reader that creates and writes nothing, see Store._reader).
    A write resolves its route inside `hold()` (the plugin's writers' lock, held shared for the transaction)."""

    def __init__(self, route: Callable[[], Awaitable[Database]], gate: MoveGate,  # noqa: D107 - a view
                 operations: Operations, read_route: Callable[[], Awaitable[Database]] | None = None,
                 hold: Callable[[], AbstractAsyncContextManager[None]] | None = None) -> None:
        self._route = route
        self._read_route = read_route or route
        self._hold = hold or nullcontext
        self._gate = gate
        self.path = Path()
        self.operations = operations

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        async with self._gate.call():
            return await (await self._read_route()).read(fn, *args)

    async def write(self, fn: Callable[..., T], *args: Any, inline: bool = False) -> T:
        async with self._gate.call(), self._hold():
            return await (await self._route()).write(fn, *args, inline=inline)

    async def close(self) -> None:
        """The Store closes the connections it routes to."""
