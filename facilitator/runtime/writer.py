"""Group commit: the runtime's writes go to one thread, batched while a commit is under way.

Each accepted event becomes one :class:`~facilitator.storage.store.Write`. ``write()``
returns once that write is committed. Writes that arrive while the thread is committing
are gathered into the next transaction, so a burst of events costs a few commits, not one
each, and the event loop never blocks on the disk (timers stay on time).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from facilitator.storage.store import Store, Write

T = TypeVar("T")

MAX_BATCH = 2000


class Writer:
    """Serialises every database call onto one thread and batches writes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="facilitator-db")
        self._pending: list[tuple[Write, asyncio.Future[None]]] = []
        self._sent: list[str] = []
        self._flusher: asyncio.Task[None] | None = None
        self.commits = 0

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` on the database thread (reads, group creation...)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def submit(self, write: Write) -> asyncio.Future[None]:
        """Queue ``write``; the future is done when it is committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((write, future))
        self._kick()
        return future

    def sent(self, key: str) -> None:
        """The outbox lines under ``key`` are delivered: delete them with the next batch."""
        self._sent.append(key)
        self._kick()

    def _kick(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._pending or self._sent:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            sent, self._sent = self._sent, []
            try:
                await self.call(self.store.apply, [w for w, _ in batch], sent)
            except Exception as exc:
                self._sent.extend(sent)  # still delivered: deleted with a later batch (a resend is deduplicated)
                if not batch:
                    return  # only deletions failed: the next write tries them again
                # The whole batch failed: every waiter hears why. Writes still queued for the same
                # circles were built on the failed state, so they fail too (their circles roll back).
                failed = {w.circle_id for w, _ in batch}
                stale = [(w, f) for w, f in self._pending if w.circle_id in failed]
                self._pending = [(w, f) for w, f in self._pending if w.circle_id not in failed]
                for _, future in batch + stale:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.commits += 1
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    async def drain(self) -> None:
        """Wait until everything queued is committed."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    def close(self) -> None:
        """Stop the thread (after :meth:`drain`)."""
        self._executor.shutdown(wait=True)
