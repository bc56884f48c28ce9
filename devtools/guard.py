"""The dev host's own protection against slow and piled-up connections (docs/local.md, "Slow
connections").

In Azure, the Functions front end drops clients that send their headers or body too slowly and
caps connections; the dev host has no such front end, and uvicorn alone has no header timeout at
all (its keep-alive timeout only runs between requests). So the dev host serves through a
protocol that adds:

- a **header timeout**: from when a connection opens, or from the first byte of its next
  request, the request's headers must be complete within ``header_timeout`` seconds, else the
  connection is answered 408 and closed;
- a **connection limit**: a connection beyond ``max_connections`` open at once is answered 503
  and closed at once.

The body timeout is the ASGI app's (devtools/devhost.py): a body must arrive within
``body_timeout`` seconds of its headers.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("devhost")

_CLOSE = b"\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
TIMED_OUT = b"HTTP/1.1 408 Request Timeout" + _CLOSE
TOO_MANY = b"HTTP/1.1 503 Service Unavailable" + _CLOSE


@dataclass(frozen=True)
class Limits:
    """The dev host's connection limits, from ``DEVHOST_*`` variables (docs/local.md)."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 256

    @classmethod
    def from_environment(cls) -> Limits:
        environ = os.environ
        return cls(
            header_timeout=float(environ.get("DEVHOST_HEADER_TIMEOUT_SECONDS", cls.header_timeout)),
            body_timeout=float(environ.get("DEVHOST_BODY_TIMEOUT_SECONDS", cls.body_timeout)),
            max_connections=int(environ.get("DEVHOST_MAX_CONNECTIONS", cls.max_connections)),
        )


def _uvicorns_protocol() -> type[asyncio.Protocol]:
    """The HTTP/1.1 protocol uvicorn's ``http="auto"`` would choose."""
    try:
        import httptools  # noqa: F401
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        return HttpToolsProtocol
    except ImportError:  # pragma: no cover - httptools is in requirements-dev
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol


def guarded_protocol(limits: Limits, base: type[asyncio.Protocol] | None = None) -> type[Any]:
    """uvicorn's HTTP protocol with the header timeout and the connection limit; pass it as
    ``uvicorn.run(http=...)``. It only uses what both of uvicorn's protocols have: the
    ``connections`` set their server shares, and ``cycle``, which each sets when a request's
    headers are complete."""
    parent: Any = base or _uvicorns_protocol()

    class Guarded(parent):  # type: ignore[misc]
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                log.warning("refused a connection: %d open", len(self.connections) - 1)
                transport.write(TOO_MANY)
                transport.close()
                return
            self._arm()

        def data_received(self, data: bytes) -> None:
            before = self.cycle
            waiting = before is None or before.response_complete
            if waiting and self._deadline is None:
                self._arm()
            super().data_received(data)
            if self.cycle is not before:  # a request's headers are complete
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._deadline = asyncio.get_running_loop().call_later(
                limits.header_timeout, self._too_slow
            )

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                log.warning("closed a connection: no headers in %ss", limits.header_timeout)
                self.transport.write(TIMED_OUT)
                self.transport.close()

    return Guarded
