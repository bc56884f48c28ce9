// The storage account: the Functions host's own storage (AzureWebJobsStorage), the deployment
// package container, the events queue, the container of large events' data (the claim check) with
// the lifecycle rule that deletes it, and the table service that holds the records of idempotent
// publish (the tables are created and dropped by the code, not here: one per time generation).
// Entra ID only: shared keys are disabled, so no connection string or account key exists anywhere
// in the deployment.
param name string
param location string
param tags object = {}

@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
  'Standard_GRS'
  'Standard_RAGRS'
])
param skuName string = 'Standard_ZRS'

@description('Blob container that Flex Consumption deploys the app package to.')
param deploymentContainerName string

@description('The queue that receives accepted events (EVENTS_QUEUE_NAME).')
param queueName string

@description('EVENTS_QUEUE_PARTITIONS: queues the events are spread over; 1 is queueName itself, N > 1 are queueName-0 to queueName-<N-1>.')
@minValue(1)
@maxValue(64)
param queuePartitions int = 1

@minLength(3)
@maxLength(63)
@description('EVENTS_BLOB_CONTAINER: the container that holds the data of events too large for one queue message (the claim check). Its blobs are deleted blobRetentionDays after they were written.')
param dataContainerName string

@minValue(1)
@description('Days a blob in the data container is kept (from when it was written) before the lifecycle rule deletes it, whether its event was delivered or never queued. At least the queue message time-to-live (7 days), so that a subscriber can read the data of every message it can still receive.')
param blobRetentionDays int = 7

@description('Log Analytics workspace that receives the queue service logs.')
param logAnalyticsWorkspaceId string

@description('When true, the account is reachable only through private endpoints (storage-private-endpoints.bicep).')
param vnetEnabled bool = false

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: networkAcls.defaultAction is 'Deny' when vnetEnabled=true; without VNet integration the app has no network identity to allow, so the firewall cannot be closed; access still requires an Entra token because shared key access is disabled.
  // checkov:skip=CKV_AZURE_206: replication is zone-redundant (Standard_ZRS) in regions with availability zones and locally redundant (Standard_LRS) in the Flex regions without them, where ZRS cannot be provisioned; storageSkuName allows GZRS/GRS. The check accepts only geo-redundant SKUs, which add cross-region cost and asynchronous-copy semantics the events queue does not need.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    dnsEndpointType: 'Standard'
    // Closed with vnetEnabled=true (private endpoints). Without VNet integration a Flex Consumption app
    // reaches storage over the public endpoint (it has no fixed outbound addresses to allow-list);
    // every request still needs an Entra token, as shared key access is disabled. checkov cannot
    // evaluate the condition: CKV_AZURE_59 passes on it, CKV_AZURE_35 is skipped above.
    publicNetworkAccess: vnetEnabled ? 'Disabled' : 'Enabled'
    networkAcls: {
      defaultAction: vnetEnabled ? 'Deny' : 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Large events' data (EVENTS_BLOB_CONTAINER): one blob per claim-checked event, named
// yyyy/mm/dd/<uuid> by the code (shared/adapters/blobs.py). Private: subscribers read with an Entra token and
// Storage Blob Data Reader on this container (rbac.bicep).
resource dataContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: dataContainerName
  properties: {
    publicAccess: 'None'
  }
}

// The account's one lifecycle policy (its name must be 'default'). A single rule, limited to the
// data container by the prefix '<container>/' (a prefix starts with a container name; the slash
// stops it matching a longer name such as '<container>2'), deletes block blobs
// blobRetentionDays after their last modification: the data of delivered events and the orphans
// of events whose enqueue failed (the code deletes those itself, best effort) alike. The
// Functions host's own blobs (azure-webjobs-hosts, azure-webjobs-secrets) and the deployment
// package container (app-package-...) are other containers, so the rule never touches them. The
// platform runs lifecycle policies about once a day, so a blob may live up to a day longer; with
// blob soft delete on (blobService above), a deleted blob stays recoverable for 7 more days.
resource lifecyclePolicy 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          enabled: true
          name: 'deleteEventsData'
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${dataContainer.name}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: blobRetentionDays
                }
              }
            }
          }
        }
      ]
    }
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// The events queue, or with EVENTS_QUEUE_PARTITIONS > 1 its partitions queueName-0 ... -<N-1>
// (shared/adapters/queue.py partition_queues names them the same way).
var queueNames = [for i in range(0, queuePartitions): (queuePartitions == 1) ? queueName : '${queueName}-${i}']

resource eventsQueues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for name in queueNames: {
  parent: queueService
  name: name
}]

// Who read, wrote or deleted messages, kept in Log Analytics. This is what checkov's CKV_AZURE_33
// asks for, but that check only recognises the legacy resource type
// 'queueServices/providers/diagnosticsettings', so tests/infra/test_templates.py asserts it instead.
resource queueDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'queue-to-log-analytics'
  scope: queueService
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'StorageRead'
        enabled: true
      }
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'Transaction'
        enabled: true
      }
    ]
  }
}

output name string = storage.name
output id string = storage.id
output queueName string = queueName
output queueNames array = queueNames
output deploymentContainerName string = deploymentContainer.name
output dataContainerName string = dataContainer.name
