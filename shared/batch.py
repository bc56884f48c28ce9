"""A batch's answer: one outcome per element, in input order (DESIGN.md, "Batch mode").

``200`` when every element was published, ``207`` otherwise; each entry carries the status that
publishing the element alone would have answered, its ``id`` when that is a string, and for a
failure the same problem object a single publish returns, without ``instance`` and ``traceId``
(the response has one trace). ``Retry-After`` is set when an element may succeed later (503, 429).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from shared.model import Replayed
from shared.problems import Problem

BATCH_RESULT_CONTENT_TYPE = "application/json"
_RETRYABLE = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    ids: tuple[str | None, ...]
    #: Per element: None for published, Replayed for published before, else the problem.
    outcomes: tuple[Problem | Replayed | None, ...]

    @classmethod
    def of(
        cls, elements: Sequence[Any], outcomes: Sequence[Problem | Replayed | None]
    ) -> BatchOutcome:
        ids = tuple(
            element.get("id") if isinstance(element, dict) and isinstance(element.get("id"), str)
            else None
            for element in elements
        )  # fmt: skip
        return cls(ids, tuple(outcomes))

    @property
    def problems(self) -> list[Problem]:
        return [outcome for outcome in self.outcomes if isinstance(outcome, Problem)]

    @property
    def accepted(self) -> int:
        return len(self.outcomes) - len(self.problems)

    @property
    def failed(self) -> int:
        return len(self.problems)

    @property
    def status(self) -> int:
        return 200 if self.failed == 0 else 207

    def retry_after(self) -> int | None:
        delays = [
            int(problem.headers.get("Retry-After", "0"))
            for problem in self.problems
            if problem.status in _RETRYABLE
        ]
        return max(delays) if delays else None

    def body(self) -> dict[str, Any]:
        results: list[dict[str, Any]] = []
        for index, (event_id, outcome) in enumerate(zip(self.ids, self.outcomes, strict=True)):
            entry: dict[str, Any] = {"index": index}
            if event_id is not None:
                entry["id"] = event_id
            if isinstance(outcome, Problem):
                entry["status"] = outcome.status
                entry["problem"] = outcome.as_dict()
            else:
                entry["status"] = 200
                if outcome is not None:
                    entry["replayed"] = True
            results.append(entry)
        return {"accepted": self.accepted, "failed": self.failed, "results": results}

    def to_json(self) -> bytes:
        return orjson.dumps(self.body())

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": BATCH_RESULT_CONTENT_TYPE}
        delay = self.retry_after()
        if delay is not None:
            headers["Retry-After"] = str(delay)
        return headers

    def summary(self) -> str:
        """For the request's log line: how many, and the statuses."""
        statuses = Counter(o.status if isinstance(o, Problem) else 200 for o in self.outcomes)
        counted = ",".join(f"{status}x{count}" for status, count in sorted(statuses.items()))
        replayed = sum(isinstance(outcome, Replayed) for outcome in self.outcomes)
        return f"batch events={len(self.outcomes)} statuses={counted or 'none'} replayed={replayed}"
