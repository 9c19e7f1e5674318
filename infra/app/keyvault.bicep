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

@description('Refuse public network traffic: the vault is reachable only through its private endpoint (the function app is VNet-integrated). Azure Resource Manager still writes the secret versions this template is given.')
param vnetEnabled bool

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
  //checkov:skip=CKV_AZURE_109: Deny by default is the default (vnetEnabled true); with vnetEnabled false Flex Consumption resolves Key Vault references over the public endpoint, and the App Service platform is not a trusted service of the vault firewall. Access stays Entra ID + RBAC only.
  //checkov:skip=CKV_AZURE_189: Public network access is Disabled by default (vnetEnabled true); checkov cannot evaluate the condition that keeps it Enabled for a deployment without a virtual network.
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
    publicNetworkAccess: vnetEnabled ? 'Disabled' : 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: vnetEnabled ? 'Deny' : 'Allow'
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
