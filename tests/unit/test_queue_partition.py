"""How an event's queue partition is chosen (shared/core/idempotency.py ``queue_partition``):
from its identity alone, so a retry or a replay meets the queue of the first try."""

from __future__ import annotations

import string
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from shared.cloudevents import parse_structured
from shared.core.altinn import ALTINN_PROFILE
from shared.core.idempotency import PUBLISHER_PARTITIONS, queue_partition, record_key
from shared.core.model import Publisher
from tests.support import VALID_EVENT, body_of


def key_of(event_id: str, org: str = "ttd") -> str:
    event = parse_structured(body_of({**VALID_EVENT, "id": event_id}), ALTINN_PROFILE)
    return record_key(Publisher("https://issuer.example/", None, frozenset(), org=org), event)


@given(
    st.text(alphabet=string.ascii_letters + string.digits + "-_.:", min_size=1, max_size=40),
    st.integers(1, 64),
)
def test_the_same_identity_always_gets_the_same_partition(event_id: str, partitions: int) -> None:
    chosen = queue_partition(key_of(event_id), partitions)
    assert 0 <= chosen < partitions
    assert queue_partition(key_of(event_id), partitions) == chosen
    assert queue_partition(key_of(event_id), 1) == 0


def test_partitions_spread_independently_of_the_records_partition() -> None:
    keys = [key_of(f"spread-{number}") for number in range(4000)]
    by_queue = Counter(queue_partition(key, 4) for key in keys)
    assert set(by_queue) == {0, 1, 2, 3}
    assert all(900 <= count <= 1100 for count in by_queue.values()), by_queue
    # within one records partition (the digit before the dash), every queue is still used
    bucket = [k for k in keys if k.split("-")[0].endswith("3")]
    assert len(bucket) > 4000 // PUBLISHER_PARTITIONS // 2
    assert {queue_partition(key, 4) for key in bucket} == {0, 1, 2, 3}
