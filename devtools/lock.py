"""The lock files: `make lock`, `make lock-check` and `make install-check`.

The compatible ranges live in the `*.in` files; uv compiles each into a `*.txt` of exact pins
with hashes, which is what gets installed (pip turns on hash checking as soon as one line has a
hash, so a tampered or substituted download fails the install):

    requirements.in        -> requirements.txt        what runs in Azure (the Flex remote build)
    requirements-dev.in    -> requirements-dev.txt    + tests and linting, run-time pins unchanged
    requirements-bench.in  -> requirements-bench.txt  + the benchmarks' comparison libraries

requirements.txt is resolved for the platform the function runs on (CPython 3.11, Linux x86-64);
the other two universally, for developers on any OS. An existing lock's pins are preferences, so
`make lock` after editing one range moves only what that range forces; `make upgrade` (or
`ARGS="--upgrade-package aiohttp"`) moves versions on purpose.

The [project] dependencies of pyproject.toml (what `pip install .`, and so `azd restore`,
installs) are the pins of requirements.txt, written here between two marker lines.

`check` recompiles into a scratch copy and fails with the difference when a lock, or the pins in
pyproject.toml, are not what `make lock` would write. `install-check` installs the project with
`pip install .` into a fresh virtual environment and checks that it got exactly the pinned set
and can import the function app. Both need the package index.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import venv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON_VERSION = "3.11"
# Flex Consumption runs Linux x86-64; manylinux_2_28 is a glibc every current image exceeds.
PLATFORM = "x86_64-manylinux_2_28"
PYPROJECT = "pyproject.toml"
BEGIN = "# begin: the pins of requirements.txt, written by `make lock`"
END = "# end: the pins of requirements.txt"


@dataclass(frozen=True)
class Lock:
    source: str
    output: str
    flags: tuple[str, ...]


LOCKS = (
    Lock(
        "requirements.in",
        "requirements.txt",
        ("--python-platform", PLATFORM),
    ),
    Lock("requirements-dev.in", "requirements-dev.txt", ("--universal",)),
    Lock("requirements-bench.in", "requirements-bench.txt", ("--universal",)),
)

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)(\s*;\s*([^\\]+?))?\s*\\?$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(text: str) -> dict[str, str]:
    """name -> version of every pin in a compiled requirements file."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = PIN.match(line.strip())
        if match:
            found[canonical(match.group(1))] = match.group(2)
    return found


def uv() -> str:
    beside = Path(sys.executable).with_name("uv")
    found = str(beside) if beside.exists() else shutil.which("uv")
    if found is None:
        raise SystemExit("uv is not installed: run `make deps` (it is in requirements-dev.in)")
    return found


def compile_lock(lock: Lock, directory: Path, extra: Sequence[str]) -> None:
    """uv pip compile lock.source into directory/lock.output (existing pins are preferences).

    The sources are read from the repository; `-c requirements.txt` inside them refers to a
    sibling lock, so the scratch copies of the locks sit next to copies of the sources."""
    command = [
        uv(),
        "pip",
        "compile",
        "--quiet",
        "--generate-hashes",
        "--python-version",
        PYTHON_VERSION,
        *lock.flags,
        "--custom-compile-command",
        "make lock",
        "--output-file",
        lock.output,
        lock.source,
        *extra,
    ]
    # the resolution must not depend on the user's uv configuration or index settings
    environment = {**os.environ, "UV_NO_CONFIG": "1"}
    subprocess.run(command, cwd=directory, check=True, env=environment)  # noqa: S603


def pin_lines(text: str) -> list[str]:
    """The `name==version ; markers` requirement of every pin in a compiled file."""
    return [
        line.strip().removesuffix("\\").strip()
        for line in text.splitlines()
        if PIN.match(line.strip())
    ]


def project_pins(requirements: str) -> list[str]:
    return [f"{name}=={version}" for name, version in sorted(pins(requirements).items())]


def with_pins(pyproject: str, requirements: str) -> str:
    """pyproject.toml with the block between BEGIN and END replaced by the run-time pins."""
    start, end = pyproject.index(BEGIN), pyproject.index(END)
    indent = pyproject[pyproject.rindex("\n", 0, start) + 1 : start]
    lines = "".join(f'{indent}"{pin}",\n' for pin in project_pins(requirements))
    return pyproject[: start + len(BEGIN)] + "\n" + lines + indent + pyproject[end:]


def lock_into(directory: Path, extra: Sequence[str]) -> None:
    for lock in LOCKS:
        compile_lock(lock, directory, extra)
    pyproject = directory / PYPROJECT
    requirements = (directory / "requirements.txt").read_text(encoding="utf-8")
    pyproject.write_text(with_pins(pyproject.read_text(encoding="utf-8"), requirements), "utf-8")


def comparable(text: str) -> list[str]:
    """The lines of a lock that matter: no comments (the header and uv's `# via` notes, which
    name the scratch constraints), no continuation backslashes (the last hash has none)."""
    lines = (line.rstrip().removesuffix("\\").rstrip() for line in text.splitlines())
    return [line for line in lines if line and not line.lstrip().startswith("#")]


def is_hash(line: str) -> bool:
    return line.lstrip().startswith("--hash=")


def check() -> int:
    """0 when every lock (and pyproject.toml's pins) is what `make lock` would write now.

    The locks are compiled afresh into a scratch directory, from the .in files with the
    committed pins as constraints and no earlier output: uv would otherwise carry the committed
    hashes over unchecked. A range that no longer admits a pin fails the resolution; an added or
    removed requirement, a changed pin or a hash the index does not know shows in the diff."""
    stale: list[str] = []
    with tempfile.TemporaryDirectory(prefix="lock-check-") as scratch:
        directory = Path(scratch)
        shutil.copy2(REPO / PYPROJECT, directory / PYPROJECT)
        for lock in LOCKS:
            shutil.copy2(REPO / lock.source, directory / lock.source)
        for lock in LOCKS:
            committed = REPO / lock.output
            constraints = directory / f"{lock.output}.committed"
            constraints.write_text(
                "".join(f"{line}\n" for line in pin_lines(committed.read_text(encoding="utf-8")))
                if committed.exists()
                else "",
                encoding="utf-8",
            )
            try:
                compile_lock(lock, directory, ("--constraint", constraints.name))
            except subprocess.CalledProcessError:
                print(
                    f"\n{lock.source} no longer admits the pins of {lock.output} (uv's reason "
                    "above). Run `make lock` and commit the result (docs/dependencies.md).",
                    file=sys.stderr,
                )
                return 1
        requirements = (directory / "requirements.txt").read_text(encoding="utf-8")
        pyproject = directory / PYPROJECT
        pyproject.write_text(with_pins(pyproject.read_text(encoding="utf-8"), requirements))
        for name in [PYPROJECT, *(lock.output for lock in LOCKS)]:
            current = comparable((REPO / name).read_text(encoding="utf-8"))
            fresh = comparable((directory / name).read_text(encoding="utf-8"))
            # a file uploaded since for a pinned version adds a hash; pip's hash-checking mode
            # passes over files it has no hash for, so that alone does not make a lock stale
            fresh = [line for line in fresh if not is_hash(line) or line in current]
            if current != fresh:
                stale.append(name)
                sys.stdout.writelines(
                    difflib.unified_diff(
                        [line + "\n" for line in current],
                        [line + "\n" for line in fresh],
                        f"{name} (committed)",
                        f"{name} (from the .in files)",
                    )
                )
    if stale:
        print(
            f"\nout of date with the .in files: {', '.join(stale)}. Run `make lock` and commit "
            "the result (docs/dependencies.md).",
            file=sys.stderr,
        )
        return 1
    print("the locks are current: " + ", ".join(lock.output for lock in LOCKS))
    return 0


def checkout_files() -> list[str]:
    """The checkout's files as a fresh clone would have them, with what is not committed yet:
    tracked files and untracked ones git does not ignore (no .venv, no caches)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],  # noqa: S607
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    return [name for name in listed if (REPO / name).is_file()]


def copy_of_checkout(target: Path) -> Path:
    """``checkout_files()`` copied to ``target``, for builds that must leave nothing behind."""
    for name in checkout_files():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target / name)
    return target


def install_check() -> int:
    """`pip install .` into a fresh venv: exactly the pinned packages, and the app imports."""
    expected = pins((REPO / "requirements.txt").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="install-check-") as scratch:
        # a copy of the tracked tree, so the build leaves nothing (build/, *.egg-info) behind
        source = copy_of_checkout(Path(scratch) / "source")
        environment = Path(scratch) / "env"
        venv.create(environment, with_pip=True)
        python = str(environment / "bin" / "python")
        installing = subprocess.run(  # noqa: S603
            [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "."],
            cwd=source,
            capture_output=True,
            text=True,
        )
        if installing.returncode != 0:
            print(installing.stdout + installing.stderr, file=sys.stderr)
            print("pip install . failed (above)", file=sys.stderr)
            return 1
        listed = subprocess.run(  # noqa: S603
            [python, "-m", "pip", "list", "--format=freeze", "--exclude-editable"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        installed = pins(listed)
        ours = installed.pop(canonical("events-publish"), None)
        for tool in ("pip", "setuptools", "wheel"):
            installed.pop(tool, None)
        problems = []
        if ours is None:
            problems.append("the project itself (events-publish) was not installed")
        if installed != expected:
            for name in sorted(set(installed) | set(expected)):
                if installed.get(name) != expected.get(name):
                    problems.append(
                        f"{name}: installed {installed.get(name)}, locked {expected.get(name)}"
                    )
        # the app imports with nothing but its run-time dependencies, outside the repository
        probe = (
            "import importlib, pkgutil, function_app, shared\n"
            "for module in pkgutil.walk_packages(shared.__path__, 'shared.'):\n"
            "    importlib.import_module(module.name)\n"
            "assert function_app.app.get_functions(), 'no functions registered'\n"
        )
        imported = subprocess.run(  # noqa: S603
            [python, "-c", probe],
            cwd=scratch,
            capture_output=True,
            text=True,
            env={"PATH": os.environ.get("PATH", "")},
        )
        if imported.returncode != 0:
            problems.append("the installed app does not import:\n" + imported.stderr[-2000:])
    if problems:
        print("pip install . is not the locked app:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(f"pip install . gave the app and exactly the {len(expected)} locked packages")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["lock", "check", "install-check"])
    # anything else goes to uv: make lock ARGS="--upgrade-package aiohttp"
    arguments, uv_arguments = parser.parse_known_args(argv)
    if uv_arguments and arguments.command != "lock":
        parser.error(f"unknown arguments: {' '.join(uv_arguments)}")
    if arguments.command == "check":
        return check()
    if arguments.command == "install-check":
        return install_check()
    try:
        lock_into(REPO, uv_arguments)
    except subprocess.CalledProcessError as error:
        print(f"make lock: uv failed with status {error.returncode} (above)", file=sys.stderr)
        return 1
    print("wrote " + ", ".join(lock.output for lock in LOCKS) + " and the pins in " + PYPROJECT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
