// The user-assigned managed identity of the function app. One identity for everything the app
// reaches (host storage, deployment package, events queue, records tables, Application Insights),
// so that its role assignments can be made before the app exists and survive a re-created app.
param name string
param location string
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
