// The function app on a Flex Consumption (FC1) plan: Linux, Python 3.11, one user-assigned
// identity for everything, no keys. Properties that Flex rejects or ignores (ftpsState, alwaysOn,
// linuxFxVersion, functionAppScaleLimit, FUNCTIONS_WORKER_RUNTIME, WEBSITE_RUN_FROM_PACKAGE, ...)
// are deliberately absent; functionAppConfig replaces them.
param name string
param planName string
param location string
param tags object = {}

@description('Resource id of the user-assigned identity.')
param identityId string

@description('Client id of the user-assigned identity.')
param identityClientId string

param storageAccountName string
param deploymentContainerName string
param applicationInsightsName string

@description('The EVENTS_* settings of the code (main.bicep builds them); platform settings are added here.')
param appSettings object

@minValue(1024)
@maxValue(16777216)
@description('Largest request body the code accepts: main.bicep passes eventsMaxBodyBytes, the parameter behind EVENTS_MAX_BODY_BYTES. The host\'s own body limit is derived from it.')
param maxBodyBytes int

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@minValue(1)
@maxValue(1000)
param perInstanceConcurrency int = 16

param zoneRedundant bool = false

@minValue(0)
@maxValue(1000)
@description('Always-ready instances of the HTTP function group; 0 for none (scale from zero).')
param alwaysReadyInstances int = 0

@allowed([
  'RollingUpdate'
  'Recreate'
])
@description('functionAppConfig.siteUpdateStrategy.type: RollingUpdate drains instances in batches on a deploy; Recreate restarts them all at once.')
param siteUpdateStrategy string = 'RollingUpdate'

@description('Subnet (delegated to Microsoft.App/environments) for VNet integration; empty for none.')
param virtualNetworkSubnetId string = ''

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

var storageSuffix = environment().suffixes.storage

// The host's request body limit. The Functions host reads the whole body before the Python worker
// sees the request, so the bearer token is checked only after the body is in, and by default the
// host takes up to 100 MB (104857600 bytes). FUNCTIONS_REQUEST_BODY_SIZE_LIMIT lowers that to the
// largest body the code accepts (EVENTS_MAX_BODY_BYTES, from the same parameter) plus this margin.
// A body over the host's limit never reaches the code: the host fails the invocation and answers a
// bare 500 (docs/deploy.md, "Request body size limit"). Why 4 KiB: bodies up to 4 KiB over the
// code's limit still reach the code and get its documented 413 problem, which names the limit, so
// a publisher who is slightly over learns why; and it absorbs differences in counting (Kestrel, the
// host's server, counts chunked-transfer framing towards its limit; the code counts body bytes
// only), so the host never refuses a body the code would accept. Reading at most 4 KiB more before
// the token check is negligible next to the 100 MB default. The margin must stay small and
// positive (tests/infra/test_templates.py checks 0 < margin < 64 KiB).
var hostBodyLimitMarginBytes = 4096

// What the platform needs, all identity-based, plus the host's body limit above. The host uses blob
// storage only (locks, keys, timer schedules and the deployment package): no queue or table service
// URI for it. The code's own queue, table and blob endpoints are EVENTS_* settings (main.bicep), with
// their roles in rbac.bicep. AZURE_CLIENT_ID makes azure-identity's DefaultAzureCredential in the
// code pick the user-assigned identity for the events queue, the records tables and large events'
// data (the claim check's blobs).
//
// Telemetry (docs/deploy.md, "Telemetry"): host.json's telemetryMode OpenTelemetry makes the host
// export its own requests and logs to APPLICATIONINSIGHTS_CONNECTION_STRING. The Python worker does
// not export anything by itself: PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true makes it call
// azure-monitor-opentelemetry's configure_azure_monitor() at start-up, parent the code's spans on
// the host's invocation span, and tell the host not to forward its logs too (no duplicates).
// PYTHON_ENABLE_OPENTELEMETRY is deliberately absent: it is the OTLP-exporter variant, and on its
// own it leaves the worker's propagator unset. Both processes authenticate with the user-assigned
// identity (APPLICATIONINSIGHTS_AUTHENTICATION_STRING, read by the host and by the Python exporter;
// the role is Monitoring Metrics Publisher, rbac.bicep): the component accepts nothing else.
// OTEL_SERVICE_NAME is not set: the worker selects the azure_functions resource detector, which
// names the service after the site (WEBSITE_SITE_NAME), so the code's spans, logs and metrics carry
// the function app's name as their cloud role name without it.
var platformAppSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: 'https://${storageAccountName}.blob.${storageSuffix}'
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'true'
  AZURE_CLIENT_ID: identityClientId
  FUNCTIONS_REQUEST_BODY_SIZE_LIMIT: string(maxBodyBytes + hostBodyLimitMarginBytes)
}

var allAppSettings = union(appSettings, platformAppSettings)

resource plan 'Microsoft.Web/serverfarms@2024-11-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy is a parameter (zoneRedundant, default false): on Flex it needs a region with availability zones and keeps always-ready instances that are billed around the clock; production deployments that need it set zoneRedundant=true.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource functionApp 'Microsoft.Web/sites@2024-11-01' = {
  // checkov:skip=CKV_AZURE_222: POST /events is a public API for event publishers on the internet; every request is authenticated in code with a bearer JWT from a trusted issuer (shared/adapters/tokens.py), so the site's public network access stays enabled by design.
  // checkov:skip=CKV_AZURE_17: client certificates are not the authentication mechanism: publishers present Maskinporten/Altinn bearer tokens, validated in code.
  // checkov:skip=CKV_AZURE_78: ftpsState is not supported on Flex Consumption (a site property Flex rejects); FTP and SCM basic-auth publishing are turned off through basicPublishingCredentialsPolicies below.
  // checkov:skip=CKV_AZURE_212: numberOfWorkers does not apply to Flex Consumption: instances are platform-managed and scale from zero up to functionAppConfig.scaleAndConcurrency.maximumInstanceCount.
  // checkov:skip=CKV_AZURE_213: platform health checks (siteConfig.healthCheckPath) are not supported on Flex Consumption.
  // checkov:skip=CKV_AZURE_67: siteConfig.http20Enabled is left to the platform on Flex Consumption: Microsoft's Flex templates and samples set neither it nor remoteDebuggingEnabled (remote debugging is not offered on Flex), and publishers' clients speak HTTP/1.1 to the front end either way.
  // checkov:skip=CKV_AZURE_18: the same siteConfig.http20Enabled as CKV_AZURE_67, checked under its web-app name; left to the platform on Flex Consumption, as Microsoft's Flex samples do.
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // The identity the platform resolves Key Vault references in the app settings with (the
    // registry secrets; main.bicep, rbac.bicep). A site property, not a siteConfig one; without
    // it the platform would try a system-assigned identity, which this app does not have.
    keyVaultReferenceIdentity: identityId
    publicNetworkAccess: 'Enabled'
    virtualNetworkSubnetId: !empty(virtualNetworkSubnetId) ? virtualNetworkSubnetId : null
    siteConfig: {
      minTlsVersion: '1.2'
      appSettings: [for setting in items(allAppSettings): {
        name: setting.key
        value: setting.value
      }]
    }
    functionAppConfig: {
      // RollingUpdate (sites API 2024-11-01 or later): a deploy or a settings change drains the
      // running instances in batches instead of restarting them all, so a publish in flight is
      // answered by the version it started on. Old and new code serve side by side for a while,
      // which the queue message and the records' format must allow (docs/deploy.md).
      siteUpdateStrategy: {
        type: siteUpdateStrategy
      }
      deployment: {
        storage: {
          type: 'blobContainer'
          value: 'https://${storageAccountName}.blob.${storageSuffix}/${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
      scaleAndConcurrency: {
        // 2048 MB is one full vCPU per instance: token signature checks and JSON validation are the
        // only CPU work, and 512 MB instances get a fraction of a core.
        instanceMemoryMB: instanceMemoryMB
        // 40 instances x 16 concurrent requests already exceed the ~2,000 messages/s scale target
        // of one storage queue; a higher ceiling would only add cost and throttled retries.
        maximumInstanceCount: maximumInstanceCount
        // None by default: the app scales from zero and pays nothing while idle. The HTTP
        // functions scale as one group named 'http'.
        alwaysReady: (alwaysReadyInstances > 0) ? [
          {
            name: 'http'
            instanceCount: alwaysReadyInstances
          }
        ] : []
        triggers: {
          http: {
            // The handler is async and I/O-bound (registry lookup, enqueue) and shares one event
            // loop per worker, so one instance serves many requests at once. Python's default on
            // Flex is 1, which would start a new instance for every concurrent request; 16 keeps
            // latency flat while amortising cold starts. Revisit with a load test (docs/deploy.md).
            perInstanceConcurrency: perInstanceConcurrency
          }
        }
      }
    }
  }
}

// Publishing with a user name and password (FTP, and Kudu/SCM basic auth) is off: azd deploys with
// an Entra token.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-11-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-11-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = functionApp.name
output id string = functionApp.id
output defaultHostName string = functionApp.properties.defaultHostName
output uri string = 'https://${functionApp.properties.defaultHostName}'
