"""Reading what the function put on an Azurite queue, decoded the way a queue trigger decodes it."""

from __future__ import annotations

import json
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy


class QueueReader:
    def __init__(self, connection_string: str, queue_name: str) -> None:
        self.raw = QueueClient.from_connection_string(connection_string, queue_name)
        self.decoding = QueueClient.from_connection_string(
            connection_string, queue_name, message_decode_policy=TextBase64DecodePolicy()
        )

    def drain(self) -> list[dict[str, Any]]:
        """Every message on the queue, oldest first, decoded from Base64 JSON; removes them."""
        events: list[dict[str, Any]] = []
        try:
            while batch := list(self.decoding.receive_messages(max_messages=32)):
                for message in batch:
                    events.append(json.loads(message.content))
                    self.decoding.delete_message(message)
        except ResourceNotFoundError:
            pass  # the queue was never created: nothing was sent
        return events

    def raw_bodies(self) -> list[str]:
        """The message bodies exactly as stored (Base64 text), without removing them."""
        try:
            return [message.content for message in self.raw.peek_messages(max_messages=32)]
        except ResourceNotFoundError:
            return []
