"""docs/capacity.md's table is the one bench/capacity.py makes from the saved ``make bench``
figures (docs/performance.json) and the template defaults, and its arithmetic holds."""

from __future__ import annotations

from bench import capacity, results


def test_the_capacity_table_is_in_step_with_its_figures() -> None:
    saved = results.load(results.RESULTS)
    written = capacity.section(capacity.DOC.read_text(encoding="utf-8"))
    assert written == capacity.table(saved), "run python -m bench.capacity"


def test_the_rates_follow_from_the_use_per_event() -> None:
    single, batch = capacity.usages(results.load(results.RESULTS))
    assert single.queue_requests == 1  # one message per event: the queue's contract
    assert batch.queue_requests == 1
    assert batch.account_requests < single.account_requests  # batches pay per partition
    made = capacity.table(results.load(results.RESULTS))
    rows = {line.split(" | ")[0].strip("| "): line for line in made.splitlines()[2:]}
    account = rows["the storage account's requests"].split(" | ")
    assert float(account[3].replace(",", "")) == round(20_000 / single.account_requests)
    queue = rows["one queue's messages (the default: 1 partition)"].split(" | ")
    assert queue[3] == "2,000"
