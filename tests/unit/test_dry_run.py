"""Which query strings ask for a dry run (shared/core/steps.py ``validate_only``); the dry run
itself against the real local services is tests/integration/test_dry_run.py."""

from __future__ import annotations

import pytest

from shared.core.steps import validate_only


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", False),
        ("validateOnly=false", False),
        ("validateOnly=true", True),
        ("other=1&validateOnly=true", True),
        ("validateOnly=true&other=", True),
        ("other=true", False),
        ("validateOnly=True", None),
        ("validateOnly=1", None),
        ("validateOnly=", None),
        ("validateOnly", None),
        ("validateonly=true", None),
        ("VALIDATEONLY=false", None),
        ("validateOnly=true&validateOnly=true", None),
        ("validateOnly=true&validateOnly=false", None),
        ("validateOnly=%74rue", True),  # percent-encoded, it is still true
    ],
)
def test_the_parameter_is_true_false_or_refused(query: str, expected: bool | None) -> None:
    assert validate_only(query) is expected
