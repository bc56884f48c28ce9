"""A development Resource Registry: the ``GET …/resource/{id}/policy/rules`` contract, on loopback.

Rules come from a JSON file (``devtools/registry.json`` for ``make run``) or are set by tests,
which can also count the requests it receives and make it slow, failing or absent.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web

BASE_PATH = "/resourceregistry/api/v1"
DEFAULT_RULES_FILE = Path(__file__).with_name("registry.json")
DEV_REGISTRY_PORT = 7272


def publish_rule(
    resource: str, *subject: tuple[str, str], action: str = "publish"
) -> dict[str, Any]:
    """One flattened rule in the registry's JSON shape."""
    return {
        "subject": [{"type": kind, "value": value} for kind, value in subject],
        "action": {"type": "urn:oasis:names:tc:xacml:1.0:action:action-id", "value": action},
        "resource": [{"type": "urn:altinn:resource", "value": resource}],
    }


class DevRegistry:
    """Serves policy rules per resource identifier; unknown identifiers get 404."""

    def __init__(self, rules: dict[str, list[dict[str, Any]]] | None = None) -> None:
        self.rules: dict[str, list[dict[str, Any]]] = dict(rules or {})
        #: Requests received, per resource identifier.
        self.requests: Counter[str] = Counter()
        #: Headers of the last request, for checking outbound credentials.
        self.last_headers: dict[str, str] = {}
        #: Seconds to wait before answering (a slow registry).
        self.delay_seconds = 0.0
        #: When set, every answer is this status with a problem body (a failing registry).
        self.fail_status: int | None = None
        #: When set, every answer is a 302 to this URL with the request's path appended.
        self.redirect_to: str | None = None

    @classmethod
    def from_file(cls, path: Path = DEFAULT_RULES_FILE) -> DevRegistry:
        document = json.loads(path.read_text(encoding="utf-8"))
        return cls(document["resources"])

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def reset(self) -> None:
        self.rules.clear()
        self.requests.clear()
        self.last_headers = {}
        self.delay_seconds = 0.0
        self.fail_status = None
        self.redirect_to = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(BASE_PATH + "/resource/{identifier}/policy/rules", self._rules)
        return app

    async def _rules(self, request: web.Request) -> web.Response:
        identifier = request.match_info["identifier"]
        self.requests[identifier] += 1
        self.last_headers = dict(request.headers)
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if self.fail_status is not None:
            return _problem(self.fail_status, "dev registry failure switch")
        if self.redirect_to is not None:
            raise web.HTTPFound(self.redirect_to + request.path)
        rules = self.rules.get(identifier)
        if rules is None:
            return _problem(404, "Not Found")
        return web.json_response(rules)


def _problem(status: int, title: str) -> web.Response:
    return web.json_response(
        {"type": "about:blank", "title": title, "status": status},
        status=status,
        content_type="application/problem+json",
    )
