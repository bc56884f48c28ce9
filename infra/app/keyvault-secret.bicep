// One registry secret in the vault, written through Azure Resource Manager (control plane), so it
// works whatever the vault's network rules are. keyvault.bicep calls this module only for a
// non-empty secret. The value is a @secure() parameter: it is not recorded in the deployment
// history, and nothing here outputs it.
//
// No expiry (attributes.exp): these are credentials issued by someone else (an API gateway's
// subscription key, an app registration's client secret), whose lifetime is set where they are
// issued. An expiry here would renew nothing: Key Vault's rule is that an expired secret's value
// is not handed out (a GET can be refused with SecretExpired), so the app's Key Vault reference
// could stop resolving on that date, and the registry calls fail, while the credential itself is
// still valid. Rotation: docs/deploy.md, "Secrets".
param vaultName string
param name string

@secure()
param secretValue string

resource vault 'Microsoft.KeyVault/vaults@2024-11-01' existing = {
  name: vaultName
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2024-11-01' = {
  // checkov:skip=CKV_AZURE_41: no expiry on purpose: the credential's lifetime is set by its issuer (API gateway, app registration); an expiry here renews nothing and could only stop the app's Key Vault reference from resolving while the credential is still valid; rotation is documented in docs/deploy.md.
  parent: vault
  name: name
  properties: {
    value: secretValue
    contentType: 'text/plain'
    attributes: {
      enabled: true
    }
  }
}

output name string = secret.name
