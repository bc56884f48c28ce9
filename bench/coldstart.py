"""Cold start: ``import function_app`` in a fresh interpreter against its third-party imports alone.

The third-party modules are found, not listed by hand: a fresh interpreter imports
``function_app`` with ``__import__`` wrapped, and every module that our own code (``function_app``,
``shared.*``) imports from outside the standard library is recorded, in order. The baseline is a
fresh interpreter importing exactly those; ours is a fresh interpreter importing
``function_app``. The two alternate, run after run, and each figure is the median. Only the
import is timed (``perf_counter`` around it, inside the child); the interpreter's own start-up,
the same for both, is reported as context.

``python -X importtime`` then says what ours loads that the baseline does not: our modules'
own time and the standard-library modules only they import, the candidates for deferral.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from devtools.azurite import ROOT

FIRST_PARTY = ("function_app", "shared")

_FIND_DEPENDENCIES = r"""
import builtins, json, sys
first_party = {first_party!r}
def ours(name):
    return name.split(".")[0] in first_party
def foreign(name):
    return not ours(name) and name.split(".")[0] not in sys.stdlib_module_names
found = []
original = builtins.__import__
def recording(name, globals=None, locals=None, fromlist=(), level=0):
    module = original(name, globals, locals, fromlist, level)
    importer = (globals or {{}}).get("__name__", "")
    if level == 0 and ours(importer) and foreign(name):
        for candidate in [name] + [f"{{name}}.{{item}}" for item in fromlist or ()]:
            if candidate in sys.modules and candidate not in found:
                found.append(candidate)
    return module
builtins.__import__ = recording
import function_app
builtins.__import__ = original
print(json.dumps(found))
"""

_TIMED = r"""
import time
started = time.perf_counter()
{imports}
print(time.perf_counter() - started)
"""


def third_party_imports() -> list[str]:
    """The non-stdlib modules that function_app and shared/ import while function_app loads."""
    script = _FIND_DEPENDENCIES.format(first_party=FIRST_PARTY)
    output = subprocess.run(  # noqa: S603 - fixed command, no shell
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    modules: list[str] = json.loads(output)
    return modules


def _timed_import(imports: str) -> tuple[float, float]:
    """(seconds importing, seconds for the whole process) in a fresh interpreter."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("EVENTS_")}
    environment.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode caches, as a deployment has
    started = time.perf_counter()
    output = subprocess.run(  # noqa: S603 - fixed command, no shell
        [sys.executable, "-c", _TIMED.format(imports=imports)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(output), time.perf_counter() - started


@dataclass
class ColdStartResult:
    modules: list[str]
    runs: int
    ours_s: list[float] = field(default_factory=list)
    deps_s: list[float] = field(default_factory=list)
    ours_process_s: list[float] = field(default_factory=list)
    deps_process_s: list[float] = field(default_factory=list)
    #: (module, self microseconds) that only ours loads, slowest first
    only_ours: list[tuple[str, int]] = field(default_factory=list)

    @property
    def ours(self) -> float:
        return statistics.median(self.ours_s)

    @property
    def deps(self) -> float:
        return statistics.median(self.deps_s)

    @property
    def ratio(self) -> float:
        return self.ours / self.deps


def _importtime(imports: str) -> dict[str, int]:
    """Module -> self microseconds, from ``python -X importtime``."""
    result = subprocess.run(  # noqa: S603 - fixed command, no shell
        [sys.executable, "-X", "importtime", "-c", imports],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    times: dict[str, int] = {}
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|( *)(\S+)", line)
        if match:
            times[match.group(3)] = int(match.group(1))
    return times


def measure(runs: int = 40, progress: Callable[[str], None] = print) -> ColdStartResult:
    modules = third_party_imports()
    deps_imports = "\n".join(f"import {module}" for module in modules)
    result = ColdStartResult(modules, runs)
    progress(f"cold start: {len(modules)} third-party imports: {', '.join(modules)}")
    _timed_import("import function_app")  # bytecode caches written, files in the page cache
    _timed_import(deps_imports)
    for n in range(runs):
        pairs = [("ours", "import function_app"), ("deps", deps_imports)]
        for name, imports in pairs if n % 2 == 0 else pairs[::-1]:
            seconds, process = _timed_import(imports)
            getattr(result, f"{name}_s").append(seconds)
            getattr(result, f"{name}_process_s").append(process)
    ours_times = _importtime("import function_app")
    deps_times = _importtime(deps_imports)
    result.only_ours = sorted(
        ((module, micros) for module, micros in ours_times.items() if module not in deps_times),
        key=lambda item: -item[1],
    )
    progress(
        f"cold start: function_app {result.ours * 1000:.0f} ms, third-party alone "
        f"{result.deps * 1000:.0f} ms, ratio {result.ratio:.2f}"
    )
    return result


if __name__ == "__main__":
    outcome = measure(runs=int(sys.argv[1]) if len(sys.argv) > 1 else 20)
    total_only_ours = sum(micros for _, micros in outcome.only_ours)
    print(f"only in ours: {total_only_ours / 1000:.1f} ms")
    for module, micros in outcome.only_ours[:25]:
        print(f"  {micros / 1000:6.1f} ms  {module}")
