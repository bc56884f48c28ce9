"""The README's configuration table lists exactly the variables Settings reads."""

from __future__ import annotations

import re
from pathlib import Path

from shared.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_configuration_table_matches_settings() -> None:
    documented = set(re.findall(r"^\| `(EVENTS_[A-Z_]+)` \|", README.read_text(), flags=re.M))
    assert documented == {f"EVENTS_{name.upper()}" for name in Settings.model_fields}


def test_readme_shows_the_two_commands() -> None:
    text = README.read_text()
    assert "make run" in text
    assert "make test" in text
