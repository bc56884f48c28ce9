"""pyproject.toml as a project, and the lock files, checked offline.

`pip install .` is what `azd restore` (and azd's Python hooks) run; `make install-check`, part
of `make test`, does it for real into a fresh virtual environment with the package index. Here,
without the network: the wheel the project builds holds exactly the function's code and
depends on exactly the pins of requirements.txt, and every lock is a complete set of hashed pins.
"""

from __future__ import annotations

import email
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from devtools.lock import (
    LOCKS,
    Lock,
    canonical,
    checkout_files,
    copy_of_checkout,
    pins,
    project_pins,
)
from tests.infra.bicep import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built without the network from a copy of the checkout."""
    source = copy_of_checkout(tmp_path_factory.mktemp("source"))
    out = tmp_path_factory.mktemp("wheel")
    build_wheel(source, out)
    [built] = out.glob("*.whl")
    return built


def build_wheel(source: Path, out: Path) -> None:
    """``pip wheel`` of the project in ``source`` into ``out``, offline, in the work tree (as
    ``pip install .`` builds)."""
    subprocess.run(  # noqa: S603
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--wheel-dir",
            str(out),
            ".",
        ],
        cwd=source,
        check=True,
        capture_output=True,
    )


def test_the_wheel_holds_exactly_the_function_code(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = [name for name in archive.namelist() if ".dist-info/" not in name]
    code = sorted(name for name in checkout_files() if name.startswith("shared/"))
    assert sorted(names) == sorted(["function_app.py", *code])


def test_the_wheel_depends_on_exactly_the_run_time_pins(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        [metadata_name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(archive.read(metadata_name))
    requires = [r.split("==") for r in metadata.get_all("Requires-Dist") or []]
    locked = project_pins((REPO / "requirements.txt").read_text(encoding="utf-8"))
    assert sorted(f"{canonical(name)}=={version}" for name, version in requires) == sorted(locked)
    assert metadata["Requires-Python"] == ">=3.11"
    assert metadata["Name"] == "events-publish"


def test_pyproject_lists_the_pins_of_requirements_txt() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    locked = project_pins((REPO / "requirements.txt").read_text(encoding="utf-8"))
    assert project["dependencies"] == locked
    assert len(locked) > 20, "the transitive closure, not only the direct requirements"


@pytest.mark.parametrize("lock", LOCKS, ids=lambda lock: lock.output)
def test_every_lock_is_hashed_pins_only(lock: Lock) -> None:
    """pip checks hashes only when every requirement has one; a range or an unhashed line in a
    lock would let an untested version in."""
    output = lock.output
    text = (REPO / output).read_text(encoding="utf-8")
    entries: list[list[str]] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("--hash=sha256:"):
            assert entries, f"{output}: a hash before any pin"
            entries[-1].append(stripped)
        else:
            assert "==" in stripped, f"{output}: not an exact pin: {stripped}"
            entries.append([stripped])
    assert entries
    unhashed = [entry[0] for entry in entries if len(entry) == 1]
    assert not unhashed, f"{output}: pins without hashes: {unhashed}"
    assert len(pins(text)) == len(entries)


def test_the_development_locks_keep_the_run_time_versions() -> None:
    """The tests run what Azure runs: every run-time pin is the same in the dev and bench locks."""
    runtime = pins((REPO / "requirements.txt").read_text(encoding="utf-8"))
    for output in ("requirements-dev.txt", "requirements-bench.txt"):
        other = pins((REPO / output).read_text(encoding="utf-8"))
        differing = {n: (v, other.get(n)) for n, v in runtime.items() if other.get(n) != v}
        assert not differing, f"{output}: {differing}"


def test_the_direct_requirements_are_the_in_files() -> None:
    """requirements.txt was compiled from requirements.in: each of its ranges admits its pin."""
    from packaging.requirements import Requirement

    locked = pins((REPO / "requirements.txt").read_text(encoding="utf-8"))
    for line in (REPO / "requirements.in").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        requirement = Requirement(line)
        name = canonical(requirement.name)
        assert name in locked, f"{name} is not locked: run make lock"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"{name}=={locked[name]} is outside {requirement.specifier}: run make lock"
        )


def test_a_build_leaves_nothing_that_git_would_pick_up(tmp_path: Path) -> None:
    """`pip install .` (azd restore) builds in the work tree: setuptools leaves build/ and
    *.egg-info behind, which .gitignore must name, or they show up as changes to commit."""
    source = copy_of_checkout(tmp_path / "source")
    build_wheel(source, tmp_path / "wheel")
    tracked = set(checkout_files())
    left = sorted(
        str(path.relative_to(source))
        for path in source.rglob("*")
        if path.is_file() and str(path.relative_to(source)) not in tracked
    )
    assert any(name.startswith("build/") for name in left), "the build leaves build/ (checked)"
    checked = subprocess.run(
        ["git", "check-ignore", "--no-index", "--verbose", "--non-matching", "--stdin"],  # noqa: S607
        input="\n".join(left),
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    not_ignored = [
        line.split("\t")[-1] for line in checked.stdout.splitlines() if line.startswith("::")
    ]
    assert not_ignored == [], f".gitignore does not name what a build leaves: {not_ignored}"
