"""Reading the Bicep templates without the Bicep CLI (which cannot be installed here).

pycep-parser turns a .bicep file into nested dicts: literals stay literals (``False``,
``'TLS1_2'``), references to parameters and variables come back as their bare names, and
expressions as ``{"operator": ...}`` / ``{"function": ...}`` trees. That is enough to assert what
the templates say, though not to evaluate them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
MAIN = INFRA / "main.bicep"


@dataclass(frozen=True)
class Resource:
    """One resource declaration, with its condition and loop unwrapped."""

    file: Path
    symbol: str
    type: str
    api_version: str
    existing: bool
    body: dict[str, Any]
    condition: Any = None
    loop: Any = None

    @property
    def properties(self) -> dict[str, Any]:
        return self.body.get("properties", {})


@cache
def parse(path: Path) -> dict[str, Any]:
    """The parsed template (cached: the grammar is slow and the files do not change mid-run)."""
    return BicepParser().parse(file_path=path)


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def unwrap(config: dict[str, Any]) -> tuple[dict[str, Any], Any, Any]:
    """(body, condition, loop) of a resource or module ``config`` block."""
    condition = loop = None
    if "loop_type" in config:
        loop = config["loop_type"]
        config = config["config"]
    if set(config) == {"condition", "config"}:
        condition = config["condition"]
        config = config["config"]
    return config, condition, loop


def resources(path: Path) -> list[Resource]:
    found = []
    for symbol, declaration in parse(path).get("resources", {}).items():
        body, condition, loop = unwrap(declaration["config"])
        found.append(
            Resource(
                file=path,
                symbol=symbol,
                type=declaration["type"],
                api_version=declaration["api_version"],
                existing=declaration["existing"],
                body=body,
                condition=condition,
                loop=loop,
            )
        )
    return found


def all_resources() -> list[Resource]:
    return [resource for path in bicep_files() for resource in resources(path)]


def resource(path: Path, symbol: str) -> Resource:
    for candidate in resources(path):
        if candidate.symbol == symbol:
            return candidate
    raise AssertionError(f"{path.relative_to(REPO)} declares no resource {symbol!r}")


def only_resource_of_type(type_: str, *, existing: bool = False) -> Resource:
    """The single (non-``existing``) declaration of a resource type across infra/."""
    matches = [r for r in all_resources() if r.type == type_ and r.existing == existing]
    assert len(matches) == 1, f"expected one {type_} in infra/, found {len(matches)}"
    return matches[0]


def modules(path: Path = MAIN) -> dict[str, tuple[Path, dict[str, Any], Any]]:
    """symbol -> (module file, params, condition) for the local modules of a template."""
    found = {}
    for symbol, declaration in parse(path).get("modules", {}).items():
        assert declaration["type"] == "local", f"{symbol}: only local modules can be checked"
        body, condition, _ = unwrap(declaration["config"])
        module_file = (path.parent / declaration["detail"]["path"]).resolve()
        found[symbol] = (module_file, body.get("params", {}), condition)
    return found


def parameters(path: Path) -> dict[str, dict[str, Any]]:
    return parse(path).get("parameters", {})


def variable(path: Path, name: str) -> Any:
    variables = parse(path).get("variables", {})
    assert name in variables, f"{path.relative_to(REPO)} has no variable {name!r}"
    return variables[name]["value"]


def walk(node: Any) -> Iterator[Any]:
    """Every dict, list and scalar inside a parsed template, depth first."""
    yield node
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def dict_keys(node: Any) -> Iterator[str]:
    """Every key of every object literal (and of the parser's own structure) in ``node``."""
    for item in walk(node):
        if isinstance(item, dict):
            yield from (key.strip("'") for key in item if isinstance(key, str))


def property_path(expression: Any) -> list[Any]:
    """``a.b.c`` as ``['a', 'b', 'c']``; a function call as its ``{'function': ...}`` node."""
    operator = expression.get("operator") if isinstance(expression, dict) else None
    if operator and operator["type"] in ("property_accessor", "nested_resource_accessor"):
        operands = operator["operands"]
        return property_path(operands["operand_1"]) + property_path(operands["operand_2"])
    return [expression]


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
