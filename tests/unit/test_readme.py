"""The README's configuration table lists exactly the variables Settings reads."""

from __future__ import annotations

import re
from pathlib import Path

from shared.app.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_configuration_table_matches_settings() -> None:
    documented = set(re.findall(r"^\| `(EVENTS_[A-Z_]+)` \|", README.read_text(), flags=re.M))
    assert documented == {f"EVENTS_{name.upper()}" for name in Settings.model_fields}


def test_readme_shows_the_two_commands() -> None:
    text = README.read_text()
    assert "make run" in text
    assert "make test" in text


def layout() -> str:
    text = README.read_text()
    return text[text.index("## Layout") :].split("```")[1]


def test_the_layout_lists_every_module_and_test_layer() -> None:
    root = README.parent
    listed = layout()
    modules = [
        path.name for path in (root / "shared").rglob("*.py") if path.name != "__init__.py"
    ] + [path.name for path in (root / "devtools").glob("*.py") if path.name != "__init__.py"]
    modules += [
        f"{path.name}/" for path in (root / "shared").iterdir() if (path / "__init__.py").exists()
    ]
    layers = [
        path.name
        for path in (root / "tests").iterdir()
        if (path / "__init__.py").exists() and path.name != "support"  # helpers, not a layer
    ]
    missing = [name for name in modules if name not in listed]
    missing += [f"{layer}/" for layer in layers if f"{layer}/" not in listed]
    assert missing == []
    assert len(layers) == 6
