"""How a resource URN names a Resource Registry identifier."""

from __future__ import annotations

import pytest

from shared.core.altinn import check_resource, registry_identifier


@pytest.mark.parametrize(
    ("resource", "identifier"),
    [
        ("urn:altinn:resource:demo-events", "demo-events"),
        ("urn:altinn:resource:app_ttd_demo", "app_ttd_demo"),
        ("urn:altinn:resource:altinnapp.ttd.demo-app", "app_ttd_demo-app"),
        ("urn:altinn:resource:a/b", "a/b"),
    ],
)
def test_registry_identifier(resource: str, identifier: str) -> None:
    assert check_resource(resource) is None
    assert registry_identifier(resource) == identifier
