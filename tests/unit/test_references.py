"""The repository explains itself: every file a comment, a docstring or a document names is in the
repository, and no reference points outside it (such as a design note the repository does not
hold)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from devtools.azurite import ROOT

#: A path into the repository, as the code and the docs write them: ``shared/core/steps.py``,
#: ``docs/idempotency.md``, ``tests/support/faults.py``, not part of a URL.
REFERENCE = re.compile(
    r"(?<![\w/.:-])((?:shared|tests|docs|devtools|bench|deploy|infra|tools|\.github|\.ci)"
    r"/[\w./-]*\w\.(?:py|md|yaml|yml|json|bicep|sh|ps1|cjs|kql|toml|txt|png))\b"
)
#: Files read for references: what the repository says about itself.
SUFFIXES = (".py", ".md", ".yaml", ".yml", ".bicep", ".sh", ".ps1", ".toml", "Makefile")


def tracked() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / name for name in listed if name.endswith(SUFFIXES) and (ROOT / name).exists()]


def test_every_file_the_repository_names_is_in_it() -> None:
    missing = []
    files = tracked()
    assert len(files) > 100  # the repository was read
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for reference in REFERENCE.findall(line):
                if not (ROOT / reference).exists():
                    missing.append(f"{path.relative_to(ROOT)}:{number}: {reference}")
    assert missing == []


def test_no_reference_to_a_design_note_outside_the_repository() -> None:
    cited = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in tracked()
        if path.name != "test_references.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"(^|[^./\w-])DESIGN\.md", line)
    ]
    assert cited == []


def test_the_reference_pattern_finds_paths_and_not_urls() -> None:
    line = (
        "see shared/core/steps.py and docs/idempotency.md, not "
        "https://github.com/x/y/blob/main/docs/other.md"
    )
    assert REFERENCE.findall(line) == ["shared/core/steps.py", "docs/idempotency.md"]
