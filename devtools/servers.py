"""Run an aiohttp application on a loopback port in a background thread, with its own event loop.

Used by ``make run`` and by the tests for the dev issuer and the dev registry, so that what the
tests talk to is a real HTTP server on a real socket.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Callable

from aiohttp import web


def bind_loopback(port: int = 0) -> socket.socket:
    """A listening-ready TCP socket on 127.0.0.1 (port 0: any free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as error:
        sock.close()
        raise OSError(f"127.0.0.1:{port} is not available ({error.strerror})") from None
    return sock


class BackgroundServer:
    """An aiohttp app served from a thread. ``start()`` returns once it accepts connections."""

    def __init__(
        self,
        make_app: Callable[[], web.Application],
        sock: socket.socket,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._make_app = make_app
        self._sock = sock
        self._ssl = ssl_context
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def start(self) -> BackgroundServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(self._make_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.SockSite(self._runner, self._sock, ssl_context=self._ssl)
        await site.start()

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._sock.close()
