"""The events the benchmarks publish: small (~300 B), typical (~2 KB) and large (~40 KB), and
events of a given size (``of_size``: the claim check's 40 KiB and 200 KiB)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

RESOURCE = "urn:altinn:resource:demo-events"


def _envelope(event_id: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "https://ttd.apps.altinn.no/ttd/demo/instances/50015641/a72223a3",
        "type": "app.instance.process.completed",
        "time": "2024-05-17T13:45:00.123456Z",
        "resource": RESOURCE,
    }


def small(event_id: str = "f276b8b9-1d5c-4c5f-9f0a-2f3a0e8e6d11") -> dict[str, Any]:
    return {**_envelope(event_id), "data": {"status": "completed"}}


def typical(event_id: str = "f276b8b9-1d5c-4c5f-9f0a-2f3a0e8e6d11") -> dict[str, Any]:
    return {
        **_envelope(event_id),
        "subject": "/party/50015641",
        "alternativesubject": "/organisation/991825827",
        "resourceinstance": "50015641/a72223a3-16f3-4b2d-9ea6-9c6b1cd3b8b1",
        "datacontenttype": "application/json",
        "data": {
            "process": {"currentTask": "Task_2", "ended": "2024-05-17T13:44:59Z"},
            "items": [
                {"line": n, "sku": f"SKU-{n:05d}", "quantity": n % 7 + 1, "price": 129.5 + n}
                for n in range(22)
            ],
        },
    }


def _item(n: int) -> dict[str, Any]:
    return {
        "line": n,
        "sku": f"SKU-{n:05d}",
        "description": "Ærlig talt, en vare med en lang beskrivelse",
        "quantity": n % 7 + 1,
        "price": 129.5 + n,
        "tags": ["a", "b"],
    }


def large(event_id: str = "f276b8b9-1d5c-4c5f-9f0a-2f3a0e8e6d11") -> dict[str, Any]:
    event = typical(event_id)
    event["data"] = {"items": [_item(n) for n in range(290)]}
    return event


def compact_size(value: Any) -> int:
    """Bytes of ``value``'s compact JSON: what the endpoint's size limits measure."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def of_size(
    size_bytes: int, event_id: str = "f276b8b9-1d5c-4c5f-9f0a-2f3a0e8e6d11"
) -> dict[str, Any]:
    """The typical event with as many of ``large``'s items as data as keep its compact JSON
    within ``size_bytes`` (at most one item, 140 bytes, under it)."""
    event = typical(event_id)
    items: list[dict[str, Any]] = []
    event["data"] = {"items": items}
    size = compact_size(event)
    while (grown := size + compact_size(_item(len(items))) + bool(items)) <= size_bytes:
        items.append(_item(len(items)))
        size = grown
    return event


SIZES = {"small": small, "typical": typical, "large": large}


def body(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode()


#: What the binding percent-encodes in a ``ce-`` header (http 3.1.3.2): everything outside
#: U+0021-U+007E, and space, '"' and '%'. The benchmark events have none of them.
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')


def binary(event: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    """The same event as a binary-mode request: every attribute but ``data`` and
    ``datacontenttype`` a ``ce-`` header, Content-Type ``application/json``, the body the JSON
    of ``data``. The headers are lower case, as the pipeline reads them."""
    headers = {
        f"ce-{name}": quote(str(value), safe=_HEADER_SAFE)
        for name, value in event.items()
        if name not in ("data", "datacontenttype")
    }
    headers["content-type"] = "application/json"
    return headers, json.dumps(event["data"], ensure_ascii=False).encode()
