// The operations workbook: Application Insights > Workbooks > "Events publish: operations". Its
// charts are in workbook.json (the portal's own format, Notebook/1.0); the two resource ids it needs
// are filled in here. What each chart shows: docs/operations.md.
param location string
param tags object = {}

param applicationInsightsName string

@description('The storage account that holds the events queue (its queue service\'s QueueMessageCount is charted).')
param storageAccountName string

param displayName string = 'Events publish: operations'

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

// Placeholders in workbook.json: the component its queries run against, and the queue service
// whose metric it charts.
var template = loadTextContent('workbook.json')
var serializedData = replace(replace(template, '__APPLICATION_INSIGHTS_ID__', applicationInsights.id), '__QUEUE_SERVICE_ID__', queueService.id)

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  // A workbook's name must be a GUID; this one is stable per component, so provisioning again
  // updates the same workbook.
  name: guid(applicationInsights.id, 'events-publish-operations-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    // Listed under the component's Workbooks.
    sourceId: applicationInsights.id
    version: 'Notebook/1.0'
    serializedData: serializedData
  }
}

output id string = workbook.id
