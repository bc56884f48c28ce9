"""``make peek``: show the events waiting on the local queue (without removing them)."""

from __future__ import annotations

import json
import os

from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from devtools.azurite import Azurite


def main() -> None:
    connection = os.environ.get("EVENTS_QUEUE_CONNECTION") or Azurite(port=10001).connection_string
    name = os.environ.get("EVENTS_QUEUE_NAME", "events-registration")
    queue = QueueClient.from_connection_string(
        connection, name, message_decode_policy=TextBase64DecodePolicy()
    )
    count = queue.get_queue_properties().approximate_message_count
    print(f"{name}: about {count} messages; the oldest (up to 32):")
    for message in queue.peek_messages(max_messages=32):
        print(json.dumps(json.loads(message.content), ensure_ascii=False))


if __name__ == "__main__":
    main()
