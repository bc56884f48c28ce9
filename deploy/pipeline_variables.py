"""The GitHub workflow's variables that azd should see, as lines for $GITHUB_ENV.

    GITHUB_VARIABLES='${{ toJSON(vars) }}' python3 deploy/pipeline_variables.py >> "$GITHUB_ENV"

GitHub's ``vars`` context merges the organization's, the repository's and the environment's
variables, and cannot tell them apart. Exported wholesale, any variable that happens to share a
name with an azd variable would become a Bicep parameter without anyone noticing. So this
exports only:

- the azd variables that infra/main.parameters.json reads (``${NAME}`` or ``${NAME=default}``),
- and the smoke test's SMOKE_TEST_RESOURCE and SMOKE_TEST_WAIT_SECONDS (deploy/smoke.py);

never one the job's own ``env`` already sets (the sign-in values, and the @secure() parameters,
which come from secrets: a line in $GITHUB_ENV would override them), never an empty one, and
never one with a line break (it cannot be one $GITHUB_ENV line). The names it exports, and the
ones it leaves out, go to standard error for the job's log; values never do.

Standard library only, Python 3.9 or newer.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

PARAMETERS = Path(__file__).resolve().parents[1] / "infra" / "main.parameters.json"
SMOKE_TEST_VARIABLES = ("SMOKE_TEST_RESOURCE", "SMOKE_TEST_WAIT_SECONDS")


def parameter_variables(parameters: Path = PARAMETERS) -> set[str]:
    """The azd variables a Bicep parameter is fed from."""
    return set(re.findall(r"\$\{([A-Z0-9_]+)", parameters.read_text(encoding="utf-8")))


def exported(
    variables: dict[str, str], allowed: set[str], job_environment: dict[str, str]
) -> tuple[list[str], list[str]]:
    """($GITHUB_ENV lines, "NAME: why not" for each variable left out), sorted by name."""
    lines: list[str] = []
    left_out: list[str] = []
    for name in sorted(variables):
        value = variables[name]
        if name not in allowed:
            left_out.append(f"{name}: feeds no Bicep parameter")
        elif name in job_environment:
            left_out.append(f"{name}: set by the job itself")
        elif not isinstance(value, str) or not value:
            left_out.append(f"{name}: empty")
        elif "\n" in value or "\r" in value:
            left_out.append(f"{name}: has a line break")
        else:
            lines.append(f"{name}={value}")
    return lines, left_out


def main() -> int:
    variables = json.loads(os.environ.get("GITHUB_VARIABLES") or "{}")
    job_environment = {k: v for k, v in os.environ.items() if k != "GITHUB_VARIABLES"}
    allowed = parameter_variables() | set(SMOKE_TEST_VARIABLES)
    lines, left_out = exported(variables, allowed, job_environment)
    for line in lines:
        print(line)
    names = ", ".join(line.split("=", 1)[0] for line in lines) or "none"
    print(f"variables exported for azd: {names}", file=sys.stderr)
    for reason in left_out:
        print(f"  not exported: {reason}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
