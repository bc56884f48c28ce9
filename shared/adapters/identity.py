"""The app's managed identity for Azure Storage: one ``DefaultAzureCredential`` for every storage
client of the process (queue, table, blob), made on first use, so that they share one token
cache and one token request. ``AZURE_CLIENT_ID`` picks a user-assigned identity."""

from __future__ import annotations

from typing import Any


class ManagedIdentity:
    def __init__(self) -> None:
        self._credential: Any = None

    def credential(self) -> Any:
        """The credential; azure-identity is imported only here, because it is slow to import
        and local runs (connection strings) never need it."""
        if self._credential is None:
            from azure.identity.aio import DefaultAzureCredential

            self._credential = DefaultAzureCredential()
        return self._credential

    async def close(self) -> None:
        if self._credential is not None:
            await self._credential.close()
            self._credential = None
