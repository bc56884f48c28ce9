// The registry secrets' vault with VNet integration (vnetEnabled): no public network access, a
// private endpoint in the VNet's private endpoint subnet, and the privatelink.vaultcore zone
// linked to the VNet, so that the app resolves <vault>.vault.azure.net to the private address.
// Flex Consumption sends Key Vault reference resolution through the VNet by itself when the app
// is VNet-integrated (no vnetRouteAllEnabled needed). Secrets are written through Azure Resource
// Manager (keyvault-secret.bicep), which the vault's network rules do not restrict.
//
// The vault's other properties equal keyvault-public.bicep's (a template test compares them):
// - RBAC authorization only (no access policies): the app's identity gets Key Vault Secrets User
//   on this vault (rbac.bicep);
// - soft delete for 90 days and purge protection. Purge protection cannot be turned off again,
//   and a deleted vault cannot be purged before the 90 days are over (`azd down --purge` skips
//   it): its name stays taken until then (docs/deploy.md, "Secrets").
param name string
param location string
param tags object = {}
param virtualNetworkName string
param subnetName string
param privateEndpointName string

resource vnet 'Microsoft.Network/virtualNetworks@2024-01-01' existing = {
  name: virtualNetworkName
}

resource vault 'Microsoft.KeyVault/vaults@2024-11-01' = {
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
    publicNetworkAccess: 'Disabled'
    // No exceptions either: nothing here is a trusted service that needs one (the app comes
    // through the private endpoint, the deployment through Azure Resource Manager).
    networkAcls: {
      defaultAction: 'Deny'
      bypass: 'None'
    }
  }
}

// The zone of Key Vault's private endpoints in this cloud: privatelink.vaultcore.azure.net in
// Azure's public cloud (.vault.azure.net), privatelink.vaultcore.usgovcloudapi.net and
// privatelink.vaultcore.azure.cn in the others.
resource dnsZone 'Microsoft.Network/privateDnsZones@2020-06-01' = {
  name: 'privatelink${replace(environment().suffixes.keyvaultDns, '.vault.', '.vaultcore.')}'
  location: 'global'
  tags: tags
}

resource dnsZoneLink 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = {
  parent: dnsZone
  name: '${virtualNetworkName}-link'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: vnet.id
    }
  }
}

resource privateEndpoint 'Microsoft.Network/privateEndpoints@2024-01-01' = {
  name: privateEndpointName
  location: location
  tags: tags
  properties: {
    subnet: {
      id: '${vnet.id}/subnets/${subnetName}'
    }
    privateLinkServiceConnections: [
      {
        name: privateEndpointName
        properties: {
          privateLinkServiceId: vault.id
          groupIds: [
            'vault'
          ]
        }
      }
    ]
  }
}

resource dnsZoneGroup 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-01-01' = {
  parent: privateEndpoint
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      {
        name: 'vault'
        properties: {
          privateDnsZoneId: dnsZone.id
        }
      }
    ]
  }
}

output name string = vault.name
