"""Print a development bearer token from the dev issuer's key (``make token``).

make token
make token ARGS="--org ttd --minutes 10"
make token ARGS="--scope 'altinn:serviceowner' --org-number 991825827"
make token ARGS="--admin"
"""

from __future__ import annotations

import argparse

from devtools.azurite import ROOT
from devtools.issuer import (
    ADMIN_SCOPE,
    DEFAULT_KEY_FILE,
    DEV_ISSUER_PORT,
    PUBLISH_SCOPE,
    DevIssuer,
    SigningKey,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="make token", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--org", default="ttd", help="urn:altinn:org claim (default ttd; '' for none)"
    )
    parser.add_argument(
        "--org-number", default=None, help="urn:altinn:orgNumber and consumer claims"
    )
    parser.add_argument(
        "--scope", default=PUBLISH_SCOPE, help=f"scope claim (default {PUBLISH_SCOPE})"
    )
    parser.add_argument("--admin", action="store_true", help=f"add {ADMIN_SCOPE} to the scope")
    parser.add_argument("--minutes", type=int, default=60, help="lifetime (default 60)")
    parser.add_argument("--audience", default=None, help="aud claim")
    parser.add_argument(
        "--issuer-url",
        default=f"http://127.0.0.1:{DEV_ISSUER_PORT}",
        help="iss claim; must be the running dev issuer's URL",
    )
    options = parser.parse_args(argv)
    scope = options.scope + (f" {ADMIN_SCOPE}" if options.admin else "")
    issuer = DevIssuer(options.issuer_url, SigningKey.load_or_create(ROOT / DEFAULT_KEY_FILE))
    print(
        issuer.mint(
            org=options.org or None,
            org_number=options.org_number,
            scope=scope.strip() or None,
            lifetime_seconds=options.minutes * 60,
            audience=options.audience,
        )
    )


if __name__ == "__main__":
    main()
