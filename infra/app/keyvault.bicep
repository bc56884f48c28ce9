// Optional: the Key Vault that holds the registry secrets (EVENTS_REGISTRY_SUBSCRIPTION_KEY,
// EVENTS_REGISTRY_CLIENT_SECRET). main.bicep calls this module only when at least one of them is
// set; the app settings then hold Key Vault references, not the secrets (docs/deploy.md,
// "Secrets").
//
// The vault itself is declared in one of two modules, one per network mode, so that each has
// literal network properties (checkov cannot evaluate a ternary there, and loses the properties
// of a conditional resource):
// - keyvault-private.bicep (vnetEnabled): public network access disabled, reached through a
//   private endpoint in the VNet, like storage;
// - keyvault-public.bicep: public network access enabled. Without VNet integration a Flex app has
//   no fixed outbound address, so a firewall would also block the app's own reference resolution.
// In both, only Entra identities with a data-plane role may read a secret (RBAC authorization).
//
// Each non-empty secret is written by keyvault-secret.bicep through Azure Resource Manager (a
// Microsoft.KeyVault/vaults/secrets resource), so the deployment needs no data-plane access and
// works with public network access disabled. An empty secret writes nothing.
param name string
param location string
param tags object = {}

@description('Reach the vault only through a private endpoint in the VNet (public network access disabled).')
param vnetEnabled bool

@description('With vnetEnabled: the VNet of the private endpoint.')
param virtualNetworkName string = ''

@description('With vnetEnabled: the VNet\'s subnet for private endpoints.')
param subnetName string = ''

@description('With vnetEnabled: the name of the vault\'s private endpoint.')
param privateEndpointName string = ''

@description('Name of the secret that holds the subscription key; main.bicep builds the Key Vault reference from the same name.')
param subscriptionKeySecretName string

@description('Name of the secret that holds the client secret; main.bicep builds the Key Vault reference from the same name.')
param clientSecretSecretName string

@secure()
@description('EVENTS_REGISTRY_SUBSCRIPTION_KEY; empty writes no secret.')
param subscriptionKey string = ''

@secure()
@description('EVENTS_REGISTRY_CLIENT_SECRET; empty writes no secret.')
param clientSecret string = ''

module privateVault './keyvault-private.bicep' = if (vnetEnabled) {
  name: 'keyVaultPrivate'
  params: {
    name: name
    location: location
    tags: tags
    virtualNetworkName: virtualNetworkName
    subnetName: subnetName
    privateEndpointName: privateEndpointName
  }
}

module publicVault './keyvault-public.bicep' = if (!vnetEnabled) {
  name: 'keyVaultPublic'
  params: {
    name: name
    location: location
    tags: tags
  }
}

module subscriptionKeySecret './keyvault-secret.bicep' = if (!empty(subscriptionKey)) {
  name: 'keyVaultSecretSubscriptionKey'
  params: {
    vaultName: name
    name: subscriptionKeySecretName
    secretValue: subscriptionKey
  }
  dependsOn: [
    privateVault
    publicVault
  ]
}

module clientSecretSecret './keyvault-secret.bicep' = if (!empty(clientSecret)) {
  name: 'keyVaultSecretClientSecret'
  params: {
    vaultName: name
    name: clientSecretSecretName
    secretValue: clientSecret
  }
  dependsOn: [
    privateVault
    publicVault
  ]
}

output name string = name
