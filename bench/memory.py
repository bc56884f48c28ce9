"""Memory: RSS of the serving dev host after warm-up and after many mixed requests.

A fresh dev host (``make serve``'s process) is warmed up with the same mix it is then measured
with, and its ``VmRSS`` (``/proc/<pid>/status``) is read before and after, and every few seconds
in between. The mix, sent by the load generator at concurrency 32, cycles through:

- valid publishes (200) with a pool of distinct tokens larger than the verified-token memory
  (``shared.adapters.tokens.VERIFIED_TOKEN_CACHE_SIZE``), so that memory is full and evicting
  throughout;
- invalid events (400: no ``type``, a bad ``time``);
- no token, and tokens whose signature does not verify (401);
- tokens of another organisation (403), and events on resources the registry does not know (403,
  a handful of distinct resources, each remembered as "not registered").
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.events import RESOURCE, typical
from bench.load import rss_kib
from bench.services import OTHER_ORG, QUEUE, Stack, ours_case
from shared.adapters.tokens import VERIFIED_TOKEN_CACHE_SIZE

UNREGISTERED_RESOURCES = 8


@dataclass
class MemoryResult:
    requests: int
    warmup_requests: int
    token_pool: int
    rss_before_kib: int
    rss_after_kib: int
    statuses: dict[str, int]
    errors: int
    unexpected: dict[str, int]
    on_queue: int
    enqueued_expected: int
    seconds: float
    windows: list[dict[str, Any]]
    cases: list[tuple[str, int, int]]  # name, expected status, weight

    @property
    def growth(self) -> float:
        return self.rss_after_kib / self.rss_before_kib - 1


def _tampered(token: str) -> str:
    """The same token with a different signature (still well-formed): 401, never a 500."""
    header, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[0] ^= 0xFF
    return ".".join((header, payload, base64.urlsafe_b64encode(raw).rstrip(b"=").decode()))


def cases(stack: Stack, token_pool: int) -> list[dict[str, Any]]:
    valid = stack.tokens(token_pool)
    other_org = stack.tokens(max(1, token_pool // 10), org=OTHER_ORG)
    bad_signature = [_tampered(token) for token in stack.tokens(max(1, token_pool // 10))]
    event = typical()
    invalid = {key: value for key, value in event.items() if key != "type"}
    invalid["time"] = "yesterday"
    mix = [
        ours_case("valid", event, valid, 200, weight=10),
        ours_case("invalid-event", invalid, valid[:500], 400, weight=2),
        ours_case("no-token", event, [], 401),
        ours_case("bad-signature", event, bad_signature, 401),
        ours_case("other-org", event, other_org, 403),
    ]
    for n in range(UNREGISTERED_RESOURCES):
        unregistered = {**event, "resource": f"{RESOURCE}-unregistered-{n}"}
        mix.append(ours_case(f"unregistered-{n}", unregistered, valid, 403))
    return mix


def measure(
    stack: Stack,
    *,
    requests: int = 100_000,
    warmup_requests: int = 10_000,
    token_pool: int = VERIFIED_TOKEN_CACHE_SIZE + 1904,
    concurrency: int = 32,
    progress: Callable[[str], None] = print,
) -> MemoryResult:
    mix = cases(stack, token_pool)
    stack.restart_azurite()  # an empty Azurite
    stack.start_devhost()  # a fresh process: nothing from earlier benchmarks in its memory
    pid = stack.pid
    progress(f"memory: warm-up {warmup_requests} requests, token pool {token_pool}")
    warm = stack.run_load(
        stack.load_spec("ours", mix, concurrency=concurrency, requests=warmup_requests)
    )
    before = rss_kib(pid)
    progress(f"memory: RSS after warm-up {before} KiB; {requests} requests")
    run = stack.run_load(
        stack.load_spec(
            "ours",
            mix,
            concurrency=concurrency,
            requests=requests,
            window_seconds=10,
            watch_pid=pid,
        )
    )
    after = rss_kib(pid)
    on_queue = stack.count_and_reset(QUEUE)
    assert before is not None
    assert after is not None
    progress(f"memory: RSS after {requests} requests {after} KiB ({after / before - 1:+.1%})")
    return MemoryResult(
        requests=run["requests"],
        warmup_requests=warm["requests"],
        token_pool=token_pool,
        rss_before_kib=before,
        rss_after_kib=after,
        statuses=run["statuses"],
        errors=run["errors"] + warm["errors"],
        unexpected=dict(Counter(warm["unexpected"]) + Counter(run["unexpected"])),
        on_queue=on_queue,
        enqueued_expected=warm["enqueued_expected"] + run["enqueued_expected"],
        seconds=run["seconds"],
        windows=run["windows"],
        cases=[(case["name"], case["expect"], case["weight"]) for case in mix],
    )
