// Key Vault holding the gateway's secrets: the app registration's client secret (only when the
// credential type is 'secret') and the consented service user's Partner Center refresh token.
// Authorization is Azure RBAC; the function app reads secrets through Key Vault references
// resolved with its user-assigned identity (role assigned in rbac.bicep).
//
// A secret parameter left empty creates no secret version, so a redeployment never overwrites a
// value set later with `az keyvault secret set` (see docs/deploy.md).

@description('Azure region of the resources.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Key Vault name (3-24 characters, globally unique).')
@minLength(3)
@maxLength(24)
param name string

@description('Whether the vault accepts traffic from public networks. Disabling it requires VNet integration of the function app and a private endpoint for the vault.')
@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string = 'Enabled'

@description('Log Analytics workspace that receives the vault\'s audit log.')
param logAnalyticsId string

@description('Secret name of the app registration\'s client secret.')
param clientSecretName string

@description('Secret name of the Partner Center refresh token.')
param refreshTokenName string

@description('Store the client secret (true only when the credential type is \'secret\').')
param storeClientSecret bool

@secure()
@description('Client secret of the app registration; empty to set it later.')
param clientSecret string = ''

@description('When the client secret expires in Entra ID (ISO 8601).')
param clientSecretExpiresOn string

@secure()
@description('Refresh token of the consented service user; empty to set it later.')
param refreshToken string = ''

@description('When the refresh token must have been replaced (ISO 8601); Entra ID refresh tokens live 90 days.')
param refreshTokenExpiresOn string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  //checkov:skip=CKV_AZURE_109: Key Vault references are resolved by the App Service platform, which is not a trusted service for the vault firewall; a deny-by-default ACL needs VNet integration and a private endpoint. Access stays Entra ID + RBAC only, and publicNetworkAccess is a parameter.
  //checkov:skip=CKV_AZURE_189: Public network access is the parameter publicNetworkAccess (default Enabled) because Flex Consumption without VNet integration resolves Key Vault references over the public endpoint.
  properties: {
    tenantId: subscription().tenantId
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
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

module clientSecretVersion 'secret.bicep' = if (storeClientSecret && !empty(clientSecret)) {
  name: '${deployment().name}-client-secret'
  params: {
    vaultName: vault.name
    name: clientSecretName
    value: clientSecret
    contentType: 'text/plain; client secret of the gateway app registration'
    expiresOn: clientSecretExpiresOn
  }
}

module refreshTokenVersion 'secret.bicep' = if (!empty(refreshToken)) {
  name: '${deployment().name}-refresh-token'
  params: {
    vaultName: vault.name
    name: refreshTokenName
    value: refreshToken
    contentType: 'text/plain; Partner Center refresh token (Secure Application Model)'
    expiresOn: refreshTokenExpiresOn
  }
}

// Who read or changed which secret, kept with the rest of the gateway's logs.
resource auditLog 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit-to-log-analytics'
  scope: vault
  properties: {
    workspaceId: logAnalyticsId
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
