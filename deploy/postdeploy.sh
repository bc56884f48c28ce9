#!/bin/sh
# azd's postdeploy hook (azure.yaml): the smoke test against the deployed URL. azd puts the Bicep
# outputs, PUBLISH_ENDPOINT_URL among them, in this script's environment. docs/deploy.md.
set -eu
exec python3 -I "$(dirname "$0")/smoke.py" "$@"
