"""``make peek``: show the events waiting on the local queue, or on each of its partitions'
queues (``EVENTS_QUEUE_PARTITIONS``), without removing them."""

from __future__ import annotations

import json
import os

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from devtools.azurite import Azurite
from shared.subscriber import queue_names


def main() -> None:
    connection = os.environ.get("EVENTS_QUEUE_CONNECTION") or Azurite(port=10001).connection_string
    name = os.environ.get("EVENTS_QUEUE_NAME", "events-registration")
    partitions = int(os.environ.get("EVENTS_QUEUE_PARTITIONS", "1"))
    for queue_name in queue_names(name, partitions):
        queue = QueueClient.from_connection_string(
            connection, queue_name, message_decode_policy=TextBase64DecodePolicy()
        )
        try:
            count = queue.get_queue_properties().approximate_message_count
        except ResourceNotFoundError:
            print(f"{queue_name}: not created yet (nothing was sent to it)")
            continue
        print(f"{queue_name}: about {count} messages; the oldest (up to 32):")
        for message in queue.peek_messages(max_messages=32):
            print(json.dumps(json.loads(message.content), ensure_ascii=False))


if __name__ == "__main__":
    main()
