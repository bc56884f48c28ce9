"""The property tests' harness: the real function handler in one event loop on a background
thread (hypothesis drives the examples synchronously), against the session's Azurite, dev issuer
and dev registry."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import azure.functions as func
import hypothesis
from hypothesis import HealthCheck, settings

from shared.app.runtime import close_current_runtime
from tests.integration.conftest import publish_function
from tests.support import QueueReader, sorted_events

EXAMPLES = settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


class Harness:
    """Calls the function from a dedicated event loop, like the Functions worker does."""

    def __init__(self, queue: QueueReader, token: str, admin_token: str) -> None:
        self.queue = queue
        self.token = token
        self.admin_token = admin_token
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def call(self, body: bytes, headers: dict[str, str], method: str = "POST") -> func.HttpResponse:
        request = func.HttpRequest(method, "http://localhost/events", headers=headers, body=body)
        future = asyncio.run_coroutine_threadsafe(publish_function()(request), self._loop)
        return future.result(timeout=30)

    def check(self, response: func.HttpResponse, sent: dict[str, Any] | None) -> None:
        """No 5xx; a 200 stored exactly ``sent``; anything else stored nothing."""
        hypothesis.event(
            f"status {response.status_code}"
        )  # --hypothesis-show-statistics lists them
        assert response.status_code < 500, response.get_body()
        stored = self.queue.drain()
        if response.status_code == 200:
            assert sent is not None
            expected = {k: v for k, v in sent.items() if v is not None or k == "data"}
            # a request repeated exactly (hypothesis may draw one twice, or replay one from its
            # database first) is a replay: answered as one, and queued nothing more
            replayed = response.headers.get("Idempotent-Replayed") == "true"
            assert stored == ([] if replayed else [expected])
        else:
            assert response.headers["Content-Type"] == "application/problem+json"
            assert stored == []

    def check_batch(self, response: func.HttpResponse, elements: list[Any]) -> None:
        """No 5xx; a 200 or 207 lists every element, and exactly its 200 entries are on the queue
        (each once, as sent); any other answer stored nothing."""
        hypothesis.event(f"batch status {response.status_code}")
        assert response.status_code < 500, response.get_body()
        stored = self.queue.drain()
        if response.status_code not in (200, 207):
            assert response.headers["Content-Type"] == "application/problem+json"
            assert stored == []
            return
        results = json.loads(response.get_body())["results"]
        assert [entry["index"] for entry in results] == list(range(len(elements)))
        published = [  # a replay (the same event earlier in the batch) is not queued again
            {k: v for k, v in elements[entry["index"]].items() if v is not None or k == "data"}
            for entry in results
            if entry["status"] == 200 and not entry.get("replayed")
        ]
        for entry in results:
            hypothesis.event(f"batch entry {entry['status']}")
        succeeded = [entry for entry in results if entry["status"] == 200]
        assert (response.status_code == 200) == (len(succeeded) == len(elements))
        assert sorted_events(stored) == sorted_events(published)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(close_current_runtime(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
