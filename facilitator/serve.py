"""``facilitator serve --config FILE``: the bot, on the chat platforms the file names.

Runs until SIGINT or SIGTERM (then stops taking input, keeps and says what was accepted, and
exits 0), or until an adapter cannot carry on (a refused log-in, say: exits 1 with why).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from typing import Any, TextIO

from facilitator.config import ConfigError, ServeConfig, describe
from facilitator.runtime.adapter import Adapter
from facilitator.runtime.host import Runtime
from facilitator.storage import DEFAULT_URL
from facilitator.storage.rights import anonymise_before
from facilitator.storage.store import Store

log = logging.getLogger("facilitator.serve")


def database_url(config: ServeConfig, given: str | None) -> str:
    """``--db``, then the config's ``database``, then FACILITATOR_DATABASE_URL, then the default."""
    return given or config.database or os.environ.get("FACILITATOR_DATABASE_URL") or DEFAULT_URL


RETENTION_EVERY = 24 * 3600.0


async def keep_retention(runtime: Runtime, days: int | None) -> None:
    """Anonymise named attendance older than ``days`` now, then once a day (nothing if ``days`` is None)."""
    if days is None:
        return
    while True:
        cutoff = runtime.clock.now() - days * 86400.0
        try:
            changed = await runtime.writer.call(anonymise_before, runtime.store, cutoff)
        except Exception:  # a busy database must not stop the bot: tomorrow tries again
            log.exception("retention could not anonymise old attendance")
        else:
            if changed:
                log.info("retention: %d attendance records older than %d days no longer name anyone", changed, days)
        await asyncio.sleep(RETENTION_EVERY)


async def run_serve(
    config: ServeConfig, url: str, *, stop: asyncio.Event | None = None, err: TextIO = sys.stderr
) -> int:
    """Serve until ``stop`` is set (or a signal comes); returns the exit status."""
    from adapters.discord.adapter import DiscordAdapter, DiscordLoginError
    from adapters.matrix.adapter import MatrixAdapter
    from adapters.matrix.login import MatrixLoginError

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread, or not POSIX
            loop.add_signal_handler(signum, stop.set)
    adapters: list[Adapter] = []
    matrix = MatrixAdapter(config.matrix, config.group_of) if config.matrix is not None else None
    if matrix is not None:
        adapters.append(matrix)
    discord = DiscordAdapter(config.discord, config.group_of) if config.discord is not None else None
    if discord is not None:
        adapters.append(discord)
    store = Store(url, lawful_basis=config.privacy.lawful_basis)
    store.sync_groups(config)
    runtime = Runtime(store, adapters=adapters, config=config)
    log.info("serving %s with %s", describe(config), url.split("@")[-1])
    try:
        await runtime.start()
    except (MatrixLoginError, DiscordLoginError, ConfigError) as error:
        err.write(f"facilitator serve: {error}\n")
        await runtime.stop()
        store.close()
        return 1
    running: list[MatrixAdapter | DiscordAdapter | None] = [matrix, discord]
    failed: list[asyncio.Future[Any]] = [a.failed for a in running if a is not None and a.failed is not None]
    stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    retention = asyncio.ensure_future(keep_retention(runtime, config.privacy.retention_days))
    waits: list[asyncio.Future[Any]] = [stopping, *failed]
    done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    status = 0
    for future in failed:
        if future in done:
            err.write(f"facilitator serve: {future.result()}\n")
            status = 1
    stopping.cancel()
    retention.cancel()
    await runtime.stop()
    store.close()
    return status
