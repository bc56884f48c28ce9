// The registry secrets' vault without VNet integration (vnetEnabled false): public network access
// stays enabled, because a Flex Consumption app that is not VNet-integrated resolves its Key Vault
// references from the platform's outbound addresses, which are not fixed, and Microsoft's guidance
// for network-restricted vaults is to let the app in through its virtual network, which it does
// not have in this mode: a vault firewall would lock the app out of its own secrets. What protects
// the secrets here is RBAC: reading one needs an Entra identity with a data-plane role on this vault,
// and only the app's identity has one (Key Vault Secrets User, rbac.bicep). With VNET_ENABLED=true
// the vault is private instead (keyvault-private.bicep).
//
// Every other property equals keyvault-private.bicep's (a template test compares them): RBAC
// authorization, soft delete for 90 days, purge protection (irreversible; docs/deploy.md,
// "Secrets").
param name string
param location string
param tags object = {}

resource vault 'Microsoft.KeyVault/vaults@2024-11-01' = {
  // checkov:skip=CKV_AZURE_189: without VNet integration the Flex app resolves its Key Vault references over the vault's public endpoint from outbound addresses that are not fixed; reads need Entra RBAC (Key Vault Secrets User, the app only), and with vnetEnabled the vault is private (keyvault-private.bicep).
  // checkov:skip=CKV_AZURE_109: a firewall with defaultAction Deny would block the app's own reference resolution (without VNet integration the app has no fixed outbound addresses to allow, and no VNet to allow instead); with vnetEnabled the vault denies all public traffic (keyvault-private.bicep).
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'None'
    }
  }
}

output name string = vault.name
