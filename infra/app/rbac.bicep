// Role assignments, least privilege, each on the narrowest scope that works. Names are
// deterministic (guid of scope, principal and role), so re-deploying is idempotent.
//
// Granted to the app's identity:
// - Storage Blob Data Owner on the account: the Functions host keeps its locks and keys in blob
//   containers it creates itself (azure-webjobs-hosts, azure-webjobs-secrets), and Flex reads the
//   app package from the deployment container. Creating containers needs an account-level scope.
//   The same role covers the claim check: the code writes large events' data into the data
//   container (EVENTS_BLOB_CONTAINER) and deletes what it wrote for an event it could not queue,
//   so no second blob role is granted.
// - Storage Queue Data Message Sender on the events queue only: the app adds messages, nothing
//   else; it can neither read nor delete them, nor touch any other queue.
// - Storage Table Data Contributor on the account: the records of idempotent publish
//   (shared/adapters/tables.py) live in one table per time generation, which the code creates as each
//   generation begins and the hourly timer function drops once it has expired. Creating, listing
//   and deleting tables needs an account-level scope: a role on one table cannot create the next.
//   An entity holds SHA-256 digests of an event identity and its content, a state and a time;
//   never event data.
// - Monitoring Metrics Publisher on Application Insights: telemetry with Entra authentication.
// - Key Vault Secrets User on the registry secrets' vault only, and only when that vault exists
//   (a registry secret is set; main.bicep): the platform reads the secrets with the app's identity
//   to resolve the Key Vault references in the app settings. Read-only, secrets only (no keys or
//   certificates), and on this vault, not the resource group.
//
// Granted to a downstream subscriber, only when subscriberPrincipalId is set:
// - Storage Blob Data Reader on the data container only (never the account): reading back the data
//   of claim-checked events (the dataref of a queued event names a blob in that container). It
//   cannot list or read the host's containers or the app package, nor write or delete anything.
//   Reading the events queue is up to the subscriber's own deployment (docs/deploy.md).
// Granted to the deploying developer, only when grantUserDataRoles is set (opt-in, off by default;
// main.bicep's grantPrincipalDataRoles): Storage Blob Data Owner, Storage Queue Data Contributor
// and Storage Table Data Contributor on the account, so that the code run on a developer's
// machine (func start, make serve) can use this deployment's storage with `az login`, as the azd
// quickstart's allowUserIdentityPrincipal grants. Not for production: it reads and deletes events.
// Not granted, because this app does not need it: Storage Queue Data Contributor (the host uses
// queues only for queue/blob triggers and Durable Functions; this app has HTTP and timer triggers
// and sends through the SDK with the Message Sender role).
param storageAccountName string
param queueName string

@description('EVENTS_QUEUE_PARTITIONS: the roles on the events queue are granted on each of its partitions\' queues.')
@minValue(1)
@maxValue(64)
param queuePartitions int = 1
param applicationInsightsName string

@description('Principal id of the app\'s user-assigned identity.')
param appPrincipalId string

@description('Optional: the deploying user or pipeline, granted read access to the events queue.')
param userPrincipalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param userPrincipalType string = 'User'

@description('Grant userPrincipalId "Storage Queue Data Reader" on the events queue (to peek at messages).')
param grantUserQueueReader bool = false

@description('Grant userPrincipalId the data roles a developer needs against this account (Blob Data Owner, Queue Data Contributor, Table Data Contributor). Opt-in, off in production.')
param grantUserDataRoles bool = false

@description('The container of large events\' data (EVENTS_BLOB_CONTAINER), created by storage.bicep.')
param dataContainerName string

@description('Optional: a downstream subscriber\'s principal, granted read access to the data container only. Empty: no assignment.')
param subscriberPrincipalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param subscriberPrincipalType string = 'ServicePrincipal'

@description('Name of the registry secrets\' Key Vault (keyvault.bicep).')
param keyVaultName string

@description('Grant the app\'s identity "Key Vault Secrets User" on that vault; true exactly when main.bicep creates it.')
param grantKeyVaultSecretsUser bool = false

// Built-in role definition ids (the same in every tenant).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
  storageQueueDataMessageSender: 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'
  storageQueueDataReader: '19e7f393-937e-4f77-808e-94535e297925'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

// The events queue, or its partitions (storage.bicep names them the same way).
var queueNames = [for i in range(0, queuePartitions): (queuePartitions == 1) ? queueName : '${queueName}-${i}']

resource eventsQueues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = [for name in queueNames: {
  parent: queueService
  name: name
}]

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource dataContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: dataContainerName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource keyVault 'Microsoft.KeyVault/vaults@2024-11-01' existing = {
  name: keyVaultName
}

resource appBlobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appQueueMessageSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (name, i) in queueNames: {
  name: guid(eventsQueues[i].id, appPrincipalId, roles.storageQueueDataMessageSender)
  scope: eventsQueues[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataMessageSender)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

// The records tables are named <EVENTS_IDEMPOTENCY_TABLE><generation number> and come and go with
// the generations, so no table exists to scope the role to: the account is the narrowest scope.
resource appTableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, appPrincipalId, roles.monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Only when the vault exists (a registry secret is set): reading its secrets, for the platform's
// resolution of the app's Key Vault references (keyVaultReferenceIdentity, api.bicep).
resource appKeyVaultSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantKeyVaultSecretsUser) {
  name: guid(keyVault.id, appPrincipalId, roles.keyVaultSecretsUser)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Opt-in (grantPrincipalQueueReader in main.bicep): lets an operator peek at the events queue.
// Reader, not Contributor: looking must not consume or delete events.
var readQueues = grantUserQueueReader && !empty(userPrincipalId)

resource userQueueReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (name, i) in (readQueues ? queueNames : []): {
  name: guid(eventsQueues[i].id, userPrincipalId, roles.storageQueueDataReader)
  scope: eventsQueues[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataReader)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}]

// Opt-in (grantPrincipalDataRoles in main.bicep): a developer's own identity on the account, for
// running the code locally against this deployment's storage.
var grantDeveloper = grantUserDataRoles && !empty(userPrincipalId)

resource userBlobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantDeveloper) {
  name: guid(storage.id, userPrincipalId, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

resource userQueueDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantDeveloper) {
  name: guid(storage.id, userPrincipalId, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

resource userTableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantDeveloper) {
  name: guid(storage.id, userPrincipalId, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

// Opt-in (subscriberPrincipalId in main.bicep): a subscriber of the events queue reads the data of
// claim-checked events. Scoped to the data container, so the host's blobs and the app package stay
// out of its reach; Reader, so it can neither change nor delete the data other subscribers need.
resource subscriberBlobDataReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(subscriberPrincipalId)) {
  name: guid(dataContainer.id, subscriberPrincipalId, roles.storageBlobDataReader)
  scope: dataContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
    principalId: subscriberPrincipalId
    principalType: subscriberPrincipalType
  }
}
