// The events publish endpoint (POST /events) on Azure Functions Flex Consumption, deployed with
// `azd up` into an empty subscription. Layout and naming follow Azure-Samples/
// functions-quickstart-python-http-azd; every resource is written out in local modules (no
// registry modules) so that checkov and tests/infra can see all of it. See docs/deploy.md.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; seeds the unique suffix of every resource name.')
param environmentName string

// The regions that offer Flex Consumption (`az functionapp list-flexconsumption-locations`), as
// the azd Flex quickstart lists them, without the canary region. regionsWithoutZones below are
// the ones among them without availability zones.
@minLength(1)
@description('Region of every resource, one that offers Flex Consumption. In a region without availability zones the storage account is locally redundant and the plan cannot be zone-redundant (docs/deploy.md, "Regions").')
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of the deploying user or pipeline (azd sets AZURE_PRINCIPAL_ID). Used only when grantPrincipalQueueReader or grantPrincipalDataRoles is true.')
param principalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
@description('Kind of principal that principalId names (azd sets AZURE_PRINCIPAL_TYPE from the signed-in principal).')
param principalType string = 'User'

@description('Grant principalId "Storage Queue Data Reader" on the events queue, so that it can peek at messages with `az storage message peek --auth-mode login`. Leave false in production.')
param grantPrincipalQueueReader bool = false

@description('GRANT_PRINCIPAL_DATA_ROLES: grant principalId the data roles a developer needs to run the code locally against this deployment\'s storage (Storage Blob Data Owner, Storage Queue Data Contributor and Storage Table Data Contributor on the account), as the azd quickstart\'s allowUserIdentityPrincipal does. Off by default; leave it off in production.')
param grantPrincipalDataRoles bool = false

@description('SUBSCRIBER_PRINCIPAL_ID: object id of a downstream subscriber (its managed identity or service principal), granted "Storage Blob Data Reader" on the container of large events\' data only, to read claim-checked data back (docs/deploy.md). Empty: no assignment.')
param subscriberPrincipalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
@description('SUBSCRIBER_PRINCIPAL_TYPE: kind of principal that subscriberPrincipalId names.')
param subscriberPrincipalType string = 'ServicePrincipal'

@minValue(1)
@description('BLOB_RETENTION_DAYS: days the data of a claim-checked event is kept, from when it was written, before the storage lifecycle policy deletes it (delivered or not). Keep it at least the queue message time-to-live (7 days), so that a subscriber can read the data of every message it can still receive.')
param blobRetentionDays int = 7

@description('Integrate the app into a new virtual network and reach storage only through private endpoints (storage public network access disabled).')
param vnetEnabled bool = false

@description('ZONE_REDUNDANT: zone-redundant Flex Consumption plan. Only in a region with availability zones (not in regionsWithoutZones). The platform then keeps at least two instances ready, spread over zones and billed as always-ready instances, whatever alwaysReadyInstances says; see docs/deploy.md.')
param zoneRedundant bool = false

@minValue(0)
@maxValue(1000)
@description('ALWAYS_READY_INSTANCES: instances of the HTTP function kept running when idle (billed while idle, no cold start for the first requests). 0, the default: none, the app scales from zero.')
param alwaysReadyInstances int = 0

@allowed([
  'RollingUpdate'
  'Recreate'
])
@description('SITE_UPDATE_STRATEGY: how a deploy or a settings change reaches running instances. RollingUpdate (the default) drains and replaces instances in batches, so publishes in flight complete; Recreate restarts every instance at once and fails the publishes in flight (docs/deploy.md, "What a deploy does to publishes in flight").')
param siteUpdateStrategy string = 'RollingUpdate'

@allowed([
  ''
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
  'Standard_GRS'
  'Standard_RAGRS'
])
@description('STORAGE_SKU_NAME: replication of the storage account that holds the events queue. Empty, the default: Standard_ZRS where the region has availability zones (an accepted event survives the loss of one zone), Standard_LRS where it has none (ZRS cannot be provisioned there).')
param storageSkuName string = ''

// Optional name overrides; empty means "derive from the abbreviation and the resource token".
param resourceGroupName string = ''
param functionAppName string = ''
param appServicePlanName string = ''
param userAssignedIdentityName string = ''
param storageAccountName string = ''
param logAnalyticsName string = ''
param applicationInsightsName string = ''
param vNetName string = ''

@description('AZURE_KEY_VAULT_NAME: name of the Key Vault for the registry secrets; empty derives kv-<resource token>. The vault is purge-protected: after `azd down` its name stays taken for 90 days, so re-creating the same environment within that time needs another name here, or the old vault recovered (docs/deploy.md, "Secrets").')
param keyVaultName string = ''

// ---- Scale (functionAppConfig.scaleAndConcurrency); the reasons are in app/api.bicep --------------

@allowed([
  512
  2048
  4096
])
@description('Memory of each instance in MB; 2048 gives one full vCPU for token signature checks.')
param instanceMemoryMB int = 2048

@minValue(40)
@maxValue(1000)
@description('Upper bound of instances. 40 x perInstanceConcurrency already exceeds the scale target of one storage queue (~2,000 messages/s).')
param maximumInstanceCount int = 40

@minValue(1)
@maxValue(1000)
@description('Concurrent HTTP requests per instance. The handler is async and I/O-bound; the Python default on Flex is 1.')
param perInstanceConcurrency int = 16

// ---- Monitoring: alert rules and who hears of them (app/alerts.bicep; docs/operations.md) -------

@description('ALERT_EMAIL: e-mail address the alerts are sent to, through an action group. Empty: no action group; the alerts still fire and show in the portal (Monitor > Alerts).')
param alertEmail string = ''

@minValue(1)
@maxValue(100)
@description('ALERT_5XX_PERCENT: "publish 5xx" fires when at least this share (percent) of the answers to publishers were 5xx in two of three 5-minute bins.')
param alertFiveXxPercent int = 5

@minValue(1)
@description('ALERT_REGISTRY_FAILURES: "registry failures" fires at this many Resource Registry lookups without an answer (outcome error or stale) in 15 minutes.')
param alertRegistryFailures int = 10

@minValue(1)
@description('ALERT_QUEUE_BACKLOG: "queue backlog" fires when the storage account\'s queues hold more messages than this (hourly metric, all queues of the account).')
param alertQueueBacklog int = 1000

// ---- Application configuration: one parameter per EVENTS_* variable read by shared/app/settings.py ----
// The defaults equal the code's defaults (tests/infra/test_templates.py checks that), and each one
// is fed from the azd environment variable of the same name in main.parameters.json.

@minLength(1)
@description('EVENTS_TRUSTED_ISSUERS: comma-separated https issuer URLs whose tokens are accepted, e.g. https://platform.altinn.no/authentication/api/v1/openid/')
param eventsTrustedIssuers string

@description('EVENTS_AUDIENCE: required `aud` claim; empty means the audience is not checked. Empty is right for Altinn\'s issuer, whose exchanged tokens carry no `aud`; for any other issuer set the audience it puts in tokens for this service (the app logs a warning at start-up while it is empty).')
param eventsAudience string = ''

@description('EVENTS_PUBLISH_SCOPE: scope that allows publishing.')
param eventsPublishScope string = 'altinn:events.publish'

@description('EVENTS_ADMIN_SCOPE: scope that allows publishing on any resource.')
param eventsAdminScope string = 'altinn:events.publish.admin'

@minValue(0)
@maxValue(300)
@description('EVENTS_CLOCK_SKEW_SECONDS: leeway for exp/nbf/iat.')
param eventsClockSkewSeconds int = 10

@minLength(1)
@description('EVENTS_REGISTRY_URL: Resource Registry base URL, e.g. https://platform.altinn.no/resourceregistry/api/v1')
param eventsRegistryUrl string

@description('EVENTS_REGISTRY_TIMEOUT_SECONDS: time budget of one registry call (decimal, > 0, <= 30).')
param eventsRegistryTimeoutSeconds string = '2'

@description('EVENTS_REGISTRY_CACHE_SECONDS: how long a resource\'s rules are used before the registry is asked again (decimal seconds, 0-86400).')
param eventsRegistryCacheSeconds string = '300'

@description('EVENTS_REGISTRY_NEGATIVE_CACHE_SECONDS: how long "not registered" (404) is remembered (decimal seconds, 0-86400).')
param eventsRegistryNegativeCacheSeconds string = '30'

@description('EVENTS_REGISTRY_STALE_SECONDS: how long past their expiry the last good rules keep serving while the registry fails (decimal seconds, 0-604800).')
param eventsRegistryStaleSeconds string = '3600'

@minValue(1)
@maxValue(1000000)
@description('EVENTS_REGISTRY_CACHE_SIZE: most resources kept in the cache (least recently used evicted).')
param eventsRegistryCacheSize int = 10000

@minValue(1)
@maxValue(1000000)
@description('EVENTS_REGISTRY_NEGATIVE_CACHE_SIZE: most "not registered" answers kept, apart from the rules.')
param eventsRegistryNegativeCacheSize int = 10000

@minValue(1)
@maxValue(100000)
@description('EVENTS_REGISTRY_LOOKUPS_PER_MINUTE: registry lookups of not-cached resources one publisher may cause per minute; beyond it 429.')
param eventsRegistryLookupsPerMinute int = 120

@secure()
@description('EVENTS_REGISTRY_SUBSCRIPTION_KEY: sent as Ocp-Apim-Subscription-Key when the registry sits behind an API gateway; empty for none. A secret: @secure(), never an output; stored in Key Vault, the app setting is a Key Vault reference.')
param eventsRegistrySubscriptionKey string = ''

@description('EVENTS_REGISTRY_TOKEN_SCOPE: when set, registry calls carry a bearer token for this scope (api://.../.default); empty for anonymous calls (Altinn).')
param eventsRegistryTokenScope string = ''

@description('EVENTS_REGISTRY_CLIENT_ID: client id for client credentials; without a secret, the managed identity\'s client id (output AZURE_FUNCTION_IDENTITY_CLIENT_ID).')
param eventsRegistryClientId string = ''

@secure()
@description('EVENTS_REGISTRY_CLIENT_SECRET: client secret for client credentials instead of the managed identity; empty for none. A secret: @secure(), never an output; stored in Key Vault, the app setting is a Key Vault reference.')
param eventsRegistryClientSecret string = ''

@description('EVENTS_REGISTRY_AUTHORITY: https://login.microsoftonline.com/<tenant> (or another OpenID Connect authority), only with a client secret.')
param eventsRegistryAuthority string = ''

@minLength(3)
@maxLength(63)
@description('EVENTS_QUEUE_NAME: the queue that receives accepted events; created by this template.')
param eventsQueueName string = 'events-registration'

@description('EVENTS_QUEUE_PARTITIONS: queues the accepted events are spread over, each event on one chosen by its identity (docs/capacity.md). 1: the queue eventsQueueName alone; N > 1: eventsQueueName-0 ... -<N-1>, each created with the app\'s send role (and the optional reader role). Raise it when one queue\'s ~2,000 messages/s is the limit; every consumer must then read every partition (docs/deploy.md).')
@minValue(1)
@maxValue(64)
param eventsQueuePartitions int = 1

@description('EVENTS_QUEUE_TIMEOUT_SECONDS: time budget of one enqueue, retries included (decimal, > 0, <= 60).')
param eventsQueueTimeoutSeconds string = '3'

@minValue(1024)
@maxValue(16777216)
@description('EVENTS_MAX_BODY_BYTES: largest accepted request body. The host\'s own limit, FUNCTIONS_REQUEST_BODY_SIZE_LIMIT, is derived from it (app/api.bicep).')
param eventsMaxBodyBytes int = 1048576

@minValue(1)
@maxValue(1000)
@description('EVENTS_MAX_BATCH_EVENTS: most events in one batch (application/cloudevents-batch+json); more is 413.')
param eventsMaxBatchEvents int = 100

@description('EVENTS_BATCH_TIMEOUT_SECONDS: a batch is answered within this many seconds (decimal), whatever its dependencies do; keep it below host.json\'s functionTimeout (30 s).')
param eventsBatchTimeoutSeconds string = '20'

// Large events (the claim check): an event over one queue message, up to EVENTS_MAX_EVENT_BYTES,
// has its data written as a blob into EVENTS_BLOB_CONTAINER of the queue's storage account
// (created by app/storage.bicep, with the lifecycle rule that deletes it after blobRetentionDays).

@minValue(1024)
@maxValue(16777216)
@description('EVENTS_MAX_EVENT_BYTES: largest accepted event (compact JSON); one over a queue message has its data stored as a blob in EVENTS_BLOB_CONTAINER.')
param eventsMaxEventBytes int = 1048576

@minLength(3)
@maxLength(63)
@description('EVENTS_BLOB_CONTAINER: the container of large events\' data; created by this template, private, its blobs deleted after blobRetentionDays. Not one of the Functions host\'s containers (azure-webjobs-*, app-package-*): the lifecycle rule would delete their blobs too.')
param eventsBlobContainer string = 'events-data'

// Idempotent publish: the records live in tables of the same storage account as the events queue
// (one table per window-long generation, created, filled and dropped by the code; docs/deploy.md).

@description('EVENTS_IDEMPOTENCY_WINDOW_HOURS: how long a published event\'s identity is remembered; a repeat within it is answered as a replay and not queued again (decimal hours, 0-720; 0 turns de-duplication off). Also the span of one records table.')
param eventsIdempotencyWindowHours string = '24'

@description('EVENTS_IDEMPOTENCY_REQUIRED: true answers 503 while the records tables cannot be reached; false (the default) publishes without de-duplication then, with a warning in the log.')
param eventsIdempotencyRequired bool = false

@description('EVENTS_COMMIT_BEFORE_ANSWER: true makes each 200 wait for its record\'s commit (one more table round trip), so that no commit is left running when an instance stops (docs/deploy.md, "When an instance stops").')
param eventsCommitBeforeAnswer bool = false

@minLength(3)
@maxLength(40)
@description('EVENTS_IDEMPOTENCY_TABLE: prefix of the records tables\' names, <prefix><generation number> (3-40 letters and digits, starting with a letter). The app creates and drops these tables itself.')
param eventsIdempotencyTable string = 'eventids'

@description('EVENTS_GC_THRESHOLD: the Python garbage collector\'s first threshold in the worker (net allocations between collections of reference cycles; 0 keeps Python\'s 700). Higher spends less CPU traversing the objects of requests in flight, at the cost of cyclic garbage living a little longer (docs/performance.md).')
@minValue(0)
@maxValue(1000000)
param eventsGcThreshold int = 50000

// Secrets (EVENTS_REGISTRY_SUBSCRIPTION_KEY, EVENTS_REGISTRY_CLIENT_SECRET) are `@secure()`
// parameters, so they stay out of the deployment history and are never outputs; any new secret
// setting follows the same rule (a test checks that every SecretStr setting comes from a @secure()
// parameter). Their values go to one place only: the keyVault module below (@secure() parameters
// there too), which writes each non-empty one as a vault secret. The app settings hold a Key Vault
// reference instead, '@Microsoft.KeyVault(SecretUri=https://<vault>.vault.azure.net/secrets/<name>)',
// without a version, so that a new version is picked up (within 24 hours; docs/deploy.md,
// "Secrets"). The platform resolves it with the app's identity (keyVaultReferenceIdentity in
// app/api.bicep, Key Vault Secrets User on the vault in app/rbac.bicep). An empty secret gets no
// vault secret and an empty app setting, as before; with both empty no vault is created at all.

var abbrs = loadJsonContent('./abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}

var appName = !empty(functionAppName) ? functionAppName : '${abbrs.webSitesFunctions}api-${resourceToken}'
var storageName = !empty(storageAccountName) ? storageAccountName : '${abbrs.storageStorageAccounts}${resourceToken}'
var deploymentStorageContainerName = 'app-package-${take(appName, 32)}-${take(toLower(uniqueString(appName, resourceToken)), 7)}'
var virtualNetworkName = !empty(vNetName) ? vNetName : '${abbrs.networkVirtualNetworks}${resourceToken}'
// The Flex regions of the location parameter's list without availability zones: zone-redundant
// storage (and a zone-redundant plan) cannot be provisioned there, so the account is locally
// redundant (docs/deploy.md, "Regions").
var regionsWithoutZones = [
  'australiasoutheast'
  'northcentralus'
  'southindia'
  'ukwest'
  'westcentralus'
  'westus'
]
var regionHasZones = !contains(regionsWithoutZones, location)
var storageSku = empty(storageSkuName) ? (regionHasZones ? 'Standard_ZRS' : 'Standard_LRS') : storageSkuName
var vaultName = empty(keyVaultName) ? '${abbrs.keyVaultVaults}${resourceToken}' : keyVaultName

// The registry secrets' vault exists only when there is something to keep in it. Altinn's
// registry needs neither secret, so the default deployment has no vault: a purge-protected vault
// would otherwise outlive every `azd down` of a test environment for 90 days.
var keyVaultEnabled = !(empty(eventsRegistrySubscriptionKey) && empty(eventsRegistryClientSecret))
var keyVaultSecretNames = {
  subscriptionKey: 'events-registry-subscription-key'
  clientSecret: 'events-registry-client-secret'
}
// https://<vault>.vault.azure.net/secrets (the DNS suffix of this cloud); no secret version.
var keyVaultSecretsUrl = 'https://${vaultName}${environment().suffixes.keyvaultDns}/secrets'
var registrySubscriptionKeyReference = empty(eventsRegistrySubscriptionKey) ? '' : '@Microsoft.KeyVault(SecretUri=${keyVaultSecretsUrl}/${keyVaultSecretNames.subscriptionKey})'
var registryClientSecretReference = empty(eventsRegistryClientSecret) ? '' : '@Microsoft.KeyVault(SecretUri=${keyVaultSecretsUrl}/${keyVaultSecretNames.clientSecret})'

// The queue endpoint the code sends to with the managed identity (shared/adapters/queue.py). Built from the
// cloud's storage suffix, so it is right in every Azure cloud.
var queueAccountUrl = 'https://${storageName}.queue.${environment().suffixes.storage}'

// The table endpoint of the same account, for the records of idempotent publish (shared/adapters/tables.py),
// also reached with the managed identity.
var tableAccountUrl = 'https://${storageName}.table.${environment().suffixes.storage}'

// The blob endpoint of the same account, for large events' data (shared/adapters/blobs.py), also reached with
// the managed identity (Storage Blob Data Owner on the account, app/rbac.bicep). The same endpoint
// the host uses for AzureWebJobsStorage (app/api.bicep).
var blobAccountUrl = 'https://${storageName}.blob.${environment().suffixes.storage}'

// Every EVENTS_* app setting, and nothing else: api.bicep adds the platform settings. To support a
// new setting, add one line here and a parameter above (plus its line in main.parameters.json).
// EVENTS_QUEUE_CONNECTION is deliberately absent: in Azure the queue is reached with the managed
// identity (shared key access is disabled), so there is no connection string to set.
var eventsAppSettings = {
  EVENTS_TRUSTED_ISSUERS: eventsTrustedIssuers
  EVENTS_AUDIENCE: eventsAudience
  EVENTS_PUBLISH_SCOPE: eventsPublishScope
  EVENTS_ADMIN_SCOPE: eventsAdminScope
  EVENTS_CLOCK_SKEW_SECONDS: string(eventsClockSkewSeconds)
  EVENTS_REGISTRY_URL: eventsRegistryUrl
  EVENTS_REGISTRY_TIMEOUT_SECONDS: eventsRegistryTimeoutSeconds
  EVENTS_REGISTRY_CACHE_SECONDS: eventsRegistryCacheSeconds
  EVENTS_REGISTRY_NEGATIVE_CACHE_SECONDS: eventsRegistryNegativeCacheSeconds
  EVENTS_REGISTRY_STALE_SECONDS: eventsRegistryStaleSeconds
  EVENTS_REGISTRY_CACHE_SIZE: string(eventsRegistryCacheSize)
  EVENTS_REGISTRY_NEGATIVE_CACHE_SIZE: string(eventsRegistryNegativeCacheSize)
  EVENTS_REGISTRY_LOOKUPS_PER_MINUTE: string(eventsRegistryLookupsPerMinute)
  EVENTS_REGISTRY_SUBSCRIPTION_KEY: registrySubscriptionKeyReference
  EVENTS_REGISTRY_TOKEN_SCOPE: eventsRegistryTokenScope
  EVENTS_REGISTRY_CLIENT_ID: eventsRegistryClientId
  EVENTS_REGISTRY_CLIENT_SECRET: registryClientSecretReference
  EVENTS_REGISTRY_AUTHORITY: eventsRegistryAuthority
  EVENTS_QUEUE_ACCOUNT_URL: queueAccountUrl
  EVENTS_QUEUE_NAME: eventsQueueName
  EVENTS_QUEUE_PARTITIONS: string(eventsQueuePartitions)
  EVENTS_QUEUE_TIMEOUT_SECONDS: eventsQueueTimeoutSeconds
  EVENTS_MAX_BODY_BYTES: string(eventsMaxBodyBytes)
  EVENTS_MAX_BATCH_EVENTS: string(eventsMaxBatchEvents)
  EVENTS_BATCH_TIMEOUT_SECONDS: eventsBatchTimeoutSeconds
  EVENTS_MAX_EVENT_BYTES: string(eventsMaxEventBytes)
  EVENTS_BLOB_ACCOUNT_URL: blobAccountUrl
  EVENTS_BLOB_CONTAINER: eventsBlobContainer
  EVENTS_IDEMPOTENCY_WINDOW_HOURS: eventsIdempotencyWindowHours
  EVENTS_IDEMPOTENCY_REQUIRED: string(eventsIdempotencyRequired)
  EVENTS_COMMIT_BEFORE_ANSWER: string(eventsCommitBeforeAnswer)
  EVENTS_IDEMPOTENCY_TABLE: eventsIdempotencyTable
  EVENTS_TABLE_ACCOUNT_URL: tableAccountUrl
  EVENTS_GC_THRESHOLD: string(eventsGcThreshold)
}

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

// The one identity of the app: host storage, deployment package, events queue, large events' data,
// records tables, Application Insights.
module identity './app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: !empty(userAssignedIdentityName) ? userAssignedIdentityName : '${abbrs.managedIdentityUserAssignedIdentities}api-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring './app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: !empty(logAnalyticsName) ? logAnalyticsName : '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: !empty(applicationInsightsName) ? applicationInsightsName : '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
  }
}

module storage './app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: storageName
    location: location
    tags: tags
    skuName: storageSku
    deploymentContainerName: deploymentStorageContainerName
    queueName: eventsQueueName
    queuePartitions: eventsQueuePartitions
    dataContainerName: eventsBlobContainer
    blobRetentionDays: blobRetentionDays
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
    vnetEnabled: vnetEnabled
  }
}

module vnet './app/vnet.bicep' = if (vnetEnabled) {
  name: 'vnet'
  scope: rg
  params: {
    name: virtualNetworkName
    nsgName: '${abbrs.networkNetworkSecurityGroups}${resourceToken}'
    location: location
    tags: tags
  }
}

module storagePrivateEndpoints './app/storage-private-endpoints.bicep' = if (vnetEnabled) {
  name: 'storagePrivateEndpoints'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    virtualNetworkName: virtualNetworkName
    subnetName: vnetEnabled ? vnet.outputs.privateEndpointSubnetName : ''
    privateEndpointNamePrefix: '${abbrs.networkPrivateEndpoints}${resourceToken}'
    location: location
    tags: tags
  }
}

// Only with a registry secret (keyVaultEnabled): the vault, private with vnetEnabled, and the
// non-empty secrets in it. The app's role on it is in rbac.bicep.
module keyVault './app/keyvault.bicep' = if (keyVaultEnabled) {
  name: 'keyVault'
  scope: rg
  params: {
    name: vaultName
    location: location
    tags: tags
    vnetEnabled: vnetEnabled
    virtualNetworkName: virtualNetworkName
    subnetName: vnetEnabled ? vnet.outputs.privateEndpointSubnetName : ''
    privateEndpointName: '${abbrs.networkPrivateEndpoints}${resourceToken}-vault'
    subscriptionKeySecretName: keyVaultSecretNames.subscriptionKey
    clientSecretSecretName: keyVaultSecretNames.clientSecret
    subscriptionKey: eventsRegistrySubscriptionKey
    clientSecret: eventsRegistryClientSecret
  }
}

module rbac './app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    queueName: storage.outputs.queueName
    queuePartitions: eventsQueuePartitions
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    appPrincipalId: identity.outputs.principalId
    userPrincipalId: principalId
    userPrincipalType: principalType
    grantUserQueueReader: grantPrincipalQueueReader
    grantUserDataRoles: grantPrincipalDataRoles
    dataContainerName: storage.outputs.dataContainerName
    subscriberPrincipalId: subscriberPrincipalId
    subscriberPrincipalType: subscriberPrincipalType
    keyVaultName: vaultName
    grantKeyVaultSecretsUser: keyVaultEnabled
  }
  // The vault must exist before a role can be assigned on it.
  dependsOn: [
    keyVault
  ]
}

module api './app/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: appName
    planName: !empty(appServicePlanName) ? appServicePlanName : '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentStorageContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    appSettings: eventsAppSettings
    // The host's request body limit (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT) is derived from the same
    // parameter as EVENTS_MAX_BODY_BYTES, so the two cannot drift apart.
    maxBodyBytes: eventsMaxBodyBytes
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    perInstanceConcurrency: perInstanceConcurrency
    zoneRedundant: zoneRedundant
    alwaysReadyInstances: alwaysReadyInstances
    siteUpdateStrategy: siteUpdateStrategy
    virtualNetworkSubnetId: vnetEnabled ? vnet.outputs.appSubnetId : ''
  }
  // The app must not start before its identity may read its package, write its queue and blobs
  // and keep its records tables, nor before the secrets its Key Vault references name exist.
  dependsOn: [
    rbac
    storagePrivateEndpoints
    keyVault
  ]
}

// Monitoring beyond the telemetry itself (docs/operations.md): a standard availability test that
// POSTs to the deployed endpoint without a token, the alert rules (with an action group when
// alertEmail is set) and the operations workbook.
module availability './app/availability.bicep' = {
  name: 'availability'
  scope: rg
  params: {
    name: '${appName}-post-without-token'
    location: location
    tags: tags
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    endpointUrl: '${api.outputs.uri}/events'
  }
}

module alerts './app/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    namePrefix: appName
    location: location
    tags: tags
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    storageAccountName: storage.outputs.name
    webTestName: availability.outputs.name
    alertEmail: alertEmail
    actionGroupName: '${abbrs.insightsActionGroups}${resourceToken}'
    fiveXxPercent: alertFiveXxPercent
    registryFailures: alertRegistryFailures
    queueBacklog: alertQueueBacklog
  }
}

module workbook './app/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    location: location
    tags: tags
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    storageAccountName: storage.outputs.name
  }
}

// Read by azd (written into .azure/<env>/.env) and by docs/deploy.md's smoke test.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = api.outputs.name
output AZURE_FUNCTION_ID string = api.outputs.id
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = api.outputs.uri
output PUBLISH_ENDPOINT_URL string = '${api.outputs.uri}/events'
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_QUEUE_ACCOUNT_URL string = queueAccountUrl
output AZURE_QUEUE_NAME string = storage.outputs.queueName
// What a subscriber passes to shared/subscriber.py's restore_event as container_url.
output AZURE_BLOB_CONTAINER_URL string = '${blobAccountUrl}/${storage.outputs.dataContainerName}'
output AZURE_FUNCTION_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_APPLICATION_INSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
