"""Clocks for the runtime: the only place the time of day comes from.

The engine never reads a clock; the runtime asks one of these. Tests use
:class:`ManualClock` and move time by hand (never sleeping); ``facilitator demo`` uses
:class:`ScaledClock` so a minute can pass in a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol


class Clock(Protocol):
    """Tells the time and waits for a deadline (or for ``wake`` to be set, whichever is first)."""

    def now(self) -> float: ...

    async def sleep_until(self, deadline: float | None, wake: asyncio.Event) -> None: ...


async def _wait(wake: asyncio.Event, timeout: float | None) -> None:
    if timeout is not None and timeout <= 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wake.wait(), timeout)


class SystemClock:
    """The wall clock, in seconds since the epoch."""

    def now(self) -> float:
        return time.time()

    async def sleep_until(self, deadline: float | None, wake: asyncio.Event) -> None:
        await _wait(wake, None if deadline is None else deadline - time.time())


class ScaledClock:
    """Time that runs ``speed`` times faster than the wall clock (demo: 60 = a minute a second)."""

    def __init__(self, speed: float, start: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be above 0")
        self.speed = speed
        self._origin = time.time() if start is None else start
        self._mono = time.monotonic()

    def now(self) -> float:
        return self._origin + (time.monotonic() - self._mono) * self.speed

    async def sleep_until(self, deadline: float | None, wake: asyncio.Event) -> None:
        await _wait(wake, None if deadline is None else (deadline - self.now()) / self.speed)


class ManualClock:
    """Time that moves only when a test says so: ``advance(seconds)`` or ``set(t)``."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._waiters: set[asyncio.Event] = set()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time on and wake whoever waits on this clock."""
        self.set(self._now + seconds)

    def set(self, when: float) -> None:
        """Jump to ``when`` (never backwards) and wake the waiters."""
        self._now = max(self._now, when)
        for wake in list(self._waiters):
            wake.set()

    async def sleep_until(self, deadline: float | None, wake: asyncio.Event) -> None:
        if deadline is not None and deadline <= self._now:
            return
        self._waiters.add(wake)
        try:
            await wake.wait()
        finally:
            self._waiters.discard(wake)
