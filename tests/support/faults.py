"""A fault proxy: a real HTTP server on a loopback port in front of one of Azurite's services,
which passes every request on unless a rule says otherwise. The product's storage client is
pointed at the proxy (a connection string whose endpoint is the proxy's URL), so what it meets
is what it would meet in a real network:

- ``DROP_ANSWER``: the request reaches the service and is carried out; then the connection is
  cut before the answer goes back (the client sees a reset, and cannot know the outcome);
- ``RESET``: the connection is cut before the request reaches the service (nothing happens);
- ``HOLD_ANSWER``: the request is carried out, and its answer is held until the test releases it
  (``release()``) or the proxy stops: a late answer, with no sleep in the test;
- ``HOLD_REQUEST``: the request is held before it reaches the service, until released;
- ``DELAY``: the answer goes back ``seconds`` after the service gave it;
- ``REFUSE``: the proxy answers ``503 Server Busy`` itself; nothing reaches the service.

A rule matches by method and a substring of the path, and applies to the next ``times``
requests it matches. Every request the proxy sees is counted (``seen``), so a test can count the
storage calls one publish makes from the outside.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum

import aiohttp
from aiohttp import web
from yarl import URL

from devtools.servers import BackgroundServer, bind_loopback


class Fault(Enum):
    DROP_ANSWER = "drop-answer"
    RESET = "reset"
    HOLD_ANSWER = "hold-answer"
    HOLD_REQUEST = "hold-request"
    DELAY = "delay"
    REFUSE = "refuse"


@dataclass
class Rule:
    fault: Fault
    method: str | None = None
    path_contains: str = ""
    #: How many more matching requests this rule applies to (None: every one).
    times: int | None = 1
    seconds: float = 0.0
    #: How many requests it has applied to.
    applied: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.applied >= self.times:
            return False
        return (self.method is None or self.method == method) and self.path_contains in path


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    fault: Fault | None
    status: int | None


_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}
)


@dataclass
class _Held:
    release: asyncio.Event
    loop: asyncio.AbstractEventLoop


class FaultProxy:
    """See the module docstring. ``upstream`` is the service's origin (``http://127.0.0.1:N``)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._held: list[_Held] = []
        self.seen: list[Seen] = []
        self._session: aiohttp.ClientSession | None = None
        self._server = BackgroundServer(self._app, bind_loopback())

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._server.start()
        return self

    def stop(self) -> None:
        self.release()
        self._server.stop()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"

    # -- what the test says ----------------------------------------------------------------------
    def add(
        self,
        fault: Fault,
        *,
        method: str | None = None,
        path_contains: str = "",
        times: int | None = 1,
        seconds: float = 0.0,
    ) -> Rule:
        rule = Rule(fault, method, path_contains, times, seconds)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def release(self) -> None:
        """Let every held request or answer go on."""
        with self._lock:
            held, self._held = self._held, []
        for item in held:
            item.loop.call_soon_threadsafe(item.release.set)

    def held(self) -> int:
        with self._lock:
            return len(self._held)

    def count(self, method: str | None = None, path_contains: str = "") -> int:
        with self._lock:
            return sum(
                1
                for seen in self.seen
                if (method is None or seen.method == method) and path_contains in seen.path
            )

    @contextmanager
    def counting(self) -> Iterator[list[Seen]]:
        """The requests seen inside the block."""
        with self._lock:
            start = len(self.seen)
        found: list[Seen] = []
        yield found
        with self._lock:
            found.extend(self.seen[start:])

    # -- the proxy ---------------------------------------------------------------------------------
    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        app.on_cleanup.append(self._close_session)
        return app

    async def _close_session(self, _: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    def _rule_for(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path):
                    rule.applied += 1
                    return rule
        return None

    async def _hold(self) -> None:
        held = _Held(asyncio.Event(), asyncio.get_running_loop())
        with self._lock:
            self._held.append(held)
        await held.release.wait()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        path = request.raw_path  # as sent: a request signed over its path must arrive as signed
        rule = self._rule_for(request.method, request.path)
        fault = rule.fault if rule is not None else None
        if fault is Fault.RESET:
            self._record(request.method, path, fault, None)
            return _cut(request)
        if fault is Fault.REFUSE:
            if rule is not None and rule.seconds:
                await asyncio.sleep(rule.seconds)  # a slow refusal: that is the fault
            self._record(request.method, path, fault, 503)
            return web.Response(
                status=503, headers={"x-ms-error-code": "ServerBusy"}, text="refused by the proxy"
            )
        if fault is Fault.HOLD_REQUEST:
            await self._hold()
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=False)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers.pop("Host", None)
        async with self._session.request(
            request.method,
            URL(self.upstream + path, encoded=True),
            headers=headers,
            data=body or None,
            skip_auto_headers=("Content-Type",),  # a signed request's headers are as signed
        ) as upstream:
            answer = await upstream.read()
            status = upstream.status
            answer_headers = {
                k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP
            }
        self._record(request.method, path, fault, status)
        if fault is Fault.DROP_ANSWER:
            return _cut(request)
        if fault is Fault.HOLD_ANSWER:
            await self._hold()
        if fault is Fault.DELAY and rule is not None:
            await asyncio.sleep(rule.seconds)  # the service is slow: that is the fault
        return web.Response(status=status, headers=answer_headers, body=answer)

    def _record(self, method: str, path: str, fault: Fault | None, status: int | None) -> None:
        with self._lock:
            self.seen.append(Seen(method, path, fault, status))


def _cut(request: web.Request) -> web.StreamResponse:
    """Cut the connection: the client gets no answer (a reset), whatever it sent."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=204)  # never written: the transport is gone


def through_proxy(connection_string: str, service: str, proxy: FaultProxy) -> str:
    """``connection_string`` with ``service``'s endpoint (``TableEndpoint`` and so on) replaced
    by the proxy's, keeping the account path."""
    name = {"table": "TableEndpoint", "queue": "QueueEndpoint", "blob": "BlobEndpoint"}[service]
    parts = []
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        if key == name:
            account_path = value.split("/", 3)[3] if value.count("/") >= 3 else ""
            value = f"{proxy.origin}/{account_path}"
        if part:
            parts.append(f"{key}={value}")
    return ";".join(parts) + ";"
