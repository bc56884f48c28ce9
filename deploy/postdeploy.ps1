# azd's postdeploy hook on Windows (azure.yaml): the smoke test against the deployed URL. azd puts
# the Bicep outputs, PUBLISH_ENDPOINT_URL among them, in this script's environment. docs/deploy.md.
$ErrorActionPreference = 'Stop'
python -I (Join-Path $PSScriptRoot 'smoke.py') @args
exit $LASTEXITCODE
