// Partner Center gateway: a Python 3.11 function app on Flex Consumption with a user-assigned
// managed identity, identity-only storage, Key Vault for its secrets and Application Insights.
// Deploy with `azd up`, or `az deployment group create -g <rg> -f infra/main.bicep` (docs/deploy.md).
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(64)
@description('Name of the environment (azd environment name); part of every resource name.')
param environmentName string

@minLength(1)
@description('Azure region of all resources. It must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
param location string = resourceGroup().location

@minLength(36)
@maxLength(36)
@description('Client (application) id of the gateway\'s app registration (docs/deploy.md).')
param apiClientId string

@description('The partner\'s Entra tenant id; defaults to the tenant of the deployment.')
param partnerTenantId string = tenant().tenantId

@description('How the app registration proves its identity to Entra ID: federated (the function app\'s managed identity is a federated credential of the app registration: no secret at all; recommended) or secret (a client secret kept in Key Vault).')
@allowed([
  'federated'
  'secret'
])
param credentialType string = 'federated'

@secure()
@description('Client secret of the app registration, used only when credentialType is secret. Leave empty to set it later with az keyvault secret set.')
param clientSecret string = ''

@description('When the client secret expires in Entra ID (ISO 8601); becomes the expiry of the Key Vault secret.')
param clientSecretExpiresOn string = dateTimeAdd(utcNow(), 'P180D')

@secure()
@description('Refresh token of the consented service user (Secure Application Model). Leave empty to set it later with az keyvault secret set.')
param partnerCenterRefreshToken string = ''

@description('When the stored refresh token must have been replaced (ISO 8601); Entra ID refresh tokens live 90 days.')
param refreshTokenExpiresOn string = dateTimeAdd(utcNow(), 'P90D')

@description('Whether the refresh token secret already exists in the vault (stored by the consent step). The app\'s role on that one secret needs an existing secret; a token passed in partnerCenterRefreshToken counts too.')
param partnerCenterRefreshTokenStored bool = false

@description('Whether the client secret already exists in the vault (credential type secret). The app\'s read role on that one secret needs an existing secret; a value passed in clientSecret counts too.')
param clientSecretStored bool = false

@description('Principal (object) id of the operator who stores secrets in the vault, e.g. the user running azd (AZURE_PRINCIPAL_ID). Used only with grantOperatorSecretsOfficer.')
param secretsOfficerPrincipalId string = ''

@description('Give secretsOfficerPrincipalId Key Vault Secrets Officer on the vault, to store the first secrets. Opt-in and meant to be temporary: remove the assignment afterwards (docs/deploy.md).')
param grantOperatorSecretsOfficer bool = false

@description('Private networking: the app is VNet-integrated, and storage and Key Vault refuse public traffic and are reached through private endpoints with their private DNS zones. The default follows Azure\'s Flex Consumption samples (docs/deploy.md).')
param vnetEnabled bool = true

@description('Address space of the virtual network (vnetEnabled); its first two /24 subnets are used.')
param vnetAddressPrefix string = '10.0.0.0/16'

@description('Whether Log Analytics and Application Insights answer queries from public networks. Disabled (default) needs an Azure Monitor Private Link Scope to query; Enabled lets the portal query from anywhere, still with Entra ID and Azure RBAC only.')
@allowed([
  'Enabled'
  'Disabled'
])
param monitoringPublicQueryAccess string = 'Disabled'

@description('Browser origins allowed by CORS, each exact (e.g. https://make.powerautomate.com); empty turns CORS off. "*" is refused.')
param allowedOrigins array = []

@description('Maximum number of instances (Flex Consumption accepts 40 to 1000). Partner Center throttles per partner tenant, so more instances do not mean more throughput.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Spread the plan\'s instances over availability zones; only where the region supports it for Flex Consumption.')
param zoneRedundant bool = false

@description('Memory of each instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Concurrent HTTP requests per instance; the Python worker gets as many threads. The handlers mostly wait on Partner Center, so one request per instance would waste the instance.')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 16

@description('Partner Center REST base URL (other clouds have other URLs).')
param partnerCenterApiUrl string = 'https://api.partnercenter.microsoft.com'

@description('Delegated scope requested for Partner Center tokens.')
param partnerCenterScope string = 'https://api.partnercenter.microsoft.com/user_impersonation'

@description('Entra ID authority host; defaults to the one of the cloud being deployed to.')
param authorityHost string = environment().authentication.loginEndpoint

@description('X-Locale sent to Partner Center.')
param partnerCenterLocale string = 'en-US'

@description('MS-PartnerCenter-Application header value.')
param partnerCenterApplicationName string = 'PartnerCenterGateway'

@description('Time budget of one call in seconds, retries and token exchange included (Power Automate gives up at 120 s).')
@minValue(1)
@maxValue(115)
param partnerCenterDeadlineSeconds int = 60

@description('Attempts per Partner Center call, the first one included.')
@minValue(1)
@maxValue(10)
param partnerCenterMaxAttempts int = 5

@description('Users whose Partner Center tokens are cached per instance.')
@minValue(1)
param tokenCacheMaxUsers int = 10000

@description('How long the relationship request URL is cached, in seconds (0 turns the cache off).')
@minValue(0)
param relationshipRequestCacheSeconds int = 3600

@description('Comma-separated client ids allowed to call the gateway (the connector\'s client, your daemons); empty: any app of the tenant.')
param allowedClientAppIds string = ''

@description('Hosts (comma-separated) allowed to serve the certificate Partner Center signs webhook deliveries with.')
param webhookCertificateHosts string = '3psostorageacct.blob.core.windows.net'

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = 'func-${resourceToken}'
var deploymentContainerName = 'app-package-${take(resourceToken, 8)}'
var clientSecretName = 'azure-client-secret'
var refreshTokenName = 'partner-center-refresh-token'
// Partner Center events (webhook receiver, subscriptions, queue-triggered deliveries). The queue
// trigger moves a message that keeps failing to <queue>-poison, so that queue is created here too.
var eventTableNames = [
  'events'
  'subscriptions'
  'deliveries'
]
var deliveryQueueName = 'event-deliveries'
var eventQueueNames = [
  deliveryQueueName
  '${deliveryQueueName}-poison'
]
// ARM has no assert function: with a "*" in allowedOrigins this becomes int() of a sentence, which
// fails the deployment with that sentence (if() evaluates only the branch it takes).
var corsOrigins = contains(allowedOrigins, '*') ? [
  int('allowedOrigins must not contain "*": list the exact origins, e.g. https://make.powerautomate.com')
] : allowedOrigins
var storageSuffix = environment().suffixes.storage
// privatelink.vaultcore.azure.net in the public cloud (keyvaultDns is .vault.azure.net).
var keyVaultDnsZoneName = 'privatelink${replace(environment().suffixes.keyvaultDns, '.vault.', '.vaultcore.')}'
var storagePrivateEndpoints = [
  'blob'
  'queue'
  'table'
]

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${resourceToken}'
  location: location
  tags: tags
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: tags
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    publicNetworkAccessForQuery: monitoringPublicQueryAccess
  }
}

module network 'app/network.bicep' = if (vnetEnabled) {
  name: 'network'
  params: {
    location: location
    tags: tags
    name: 'vnet-${resourceToken}'
    addressPrefix: vnetAddressPrefix
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    tags: tags
    name: 'st${resourceToken}'
    deploymentContainerName: deploymentContainerName
    tableNames: eventTableNames
    queueNames: eventQueueNames
    vnetEnabled: vnetEnabled
  }
}

module storagePrivateEndpoint 'app/private-endpoint.bicep' = [
  for service in (vnetEnabled ? storagePrivateEndpoints : []): {
    name: 'pe-storage-${service}'
    params: {
      location: location
      tags: tags
      name: 'pe-${service}-${resourceToken}'
      serviceId: storage.outputs.id
      groupId: service
      dnsZoneName: 'privatelink.${service}.${storageSuffix}'
      subnetId: network.outputs.privateEndpointSubnetId
      vnetId: network.outputs.id
    }
  }
]

module keyVault 'app/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    tags: tags
    name: 'kv-${resourceToken}'
    vnetEnabled: vnetEnabled
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    clientSecretName: clientSecretName
    refreshTokenName: refreshTokenName
    storeClientSecret: credentialType == 'secret'
    clientSecret: clientSecret
    clientSecretExpiresOn: clientSecretExpiresOn
    refreshToken: partnerCenterRefreshToken
    refreshTokenExpiresOn: refreshTokenExpiresOn
  }
}

module keyVaultPrivateEndpoint 'app/private-endpoint.bicep' = if (vnetEnabled) {
  name: 'pe-keyvault'
  params: {
    location: location
    tags: tags
    name: 'pe-vault-${resourceToken}'
    serviceId: keyVault.outputs.id
    groupId: 'vault'
    dnsZoneName: keyVaultDnsZoneName
    // Guarded like Azure's samples do, although the module is skipped without vnetEnabled.
    subnetId: vnetEnabled ? network.outputs.privateEndpointSubnetId : ''
    vnetId: vnetEnabled ? network.outputs.id : ''
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  params: {
    principalId: identity.properties.principalId
    storageAccountName: storage.outputs.name
    tableNames: eventTableNames
    queueNames: eventQueueNames
    keyVaultName: keyVault.outputs.name
    refreshTokenName: refreshTokenName
    refreshTokenStored: partnerCenterRefreshTokenStored || !empty(partnerCenterRefreshToken)
    clientSecretName: clientSecretName
    clientSecretStored: credentialType == 'secret' && (clientSecretStored || !empty(clientSecret))
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    operatorPrincipalId: secretsOfficerPrincipalId
    grantOperatorSecretsOfficer: grantOperatorSecretsOfficer
  }
}

module api 'app/api.bicep' = {
  name: 'api'
  // The identity must reach storage and Key Vault, over the private endpoints when there are
  // some, before the app first starts.
  dependsOn: [
    rbac
    storagePrivateEndpoint
    keyVaultPrivateEndpoint
  ]
  params: {
    location: location
    tags: tags
    planName: 'plan-${resourceToken}'
    name: functionAppName
    identityId: identity.id
    identityClientId: identity.properties.clientId
    storageAccountName: storage.outputs.name
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.applicationInsightsConnectionString
    keyVaultUri: keyVault.outputs.uri
    clientSecretName: clientSecretName
    refreshTokenName: refreshTokenName
    credentialType: credentialType
    zoneRedundant: zoneRedundant
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
    allowedOrigins: corsOrigins
    virtualNetworkSubnetId: vnetEnabled ? network.outputs.appSubnetId : ''
    partnerCenterApiUrl: partnerCenterApiUrl
    partnerCenterScope: partnerCenterScope
    authorityHost: authorityHost
    tenantId: partnerTenantId
    clientId: apiClientId
    partnerCenterLocale: partnerCenterLocale
    partnerCenterApplicationName: partnerCenterApplicationName
    partnerCenterDeadlineSeconds: partnerCenterDeadlineSeconds
    partnerCenterMaxAttempts: partnerCenterMaxAttempts
    tokenCacheMaxUsers: tokenCacheMaxUsers
    relationshipRequestCacheSeconds: relationshipRequestCacheSeconds
    allowedClientAppIds: allowedClientAppIds
    webhookCertificateHosts: webhookCertificateHosts
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = resourceGroup().name
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output AZURE_FUNCTION_APP_URL string = api.outputs.uri
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = api.outputs.uri
output AZURE_FUNCTION_IDENTITY_CLIENT_ID string = identity.properties.clientId
output AZURE_FUNCTION_IDENTITY_PRINCIPAL_ID string = identity.properties.principalId
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_URI string = keyVault.outputs.uri
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_VNET_ENABLED bool = vnetEnabled
