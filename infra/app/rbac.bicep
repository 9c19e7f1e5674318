// Role assignments, each at the narrowest scope Azure accepts for what it is needed for, and named
// guid(scope.id, principalId, roleId) so redeployments find the same assignment.
//
// One user-assigned identity runs both the Functions host and the gateway's code (the app), so it
// holds what each of them needs; docs/security-azure.md says why each one is there.

@description('Principal (object) id of the function app\'s user-assigned identity.')
param principalId string

@description('Storage account of the host, the deployment package and the event tables and queues.')
param storageAccountName string

@description('Tables the app reads and writes.')
param tableNames array

@description('Queues the app sends to and its queue trigger reads from (the poison queue included).')
param queueNames array

@description('Key Vault holding the gateway\'s secrets.')
param keyVaultName string

@description('Secret name of the Partner Center refresh token.')
param refreshTokenName string

@description('Whether the refresh token secret exists (stored by this deployment or before it): a role assignment needs an existing scope.')
param refreshTokenStored bool

@description('Secret name of the app registration\'s client secret.')
param clientSecretName string

@description('Whether the app reads the client secret (credential type secret) and the secret exists.')
param clientSecretStored bool

@description('Application Insights component the app sends telemetry to.')
param applicationInsightsName string

@description('Principal (object) id of the operator who stores secrets in the vault, e.g. the user running azd; empty for none.')
param operatorPrincipalId string

@description('Give the operator Key Vault Secrets Officer on the vault. Opt-in, for the time it takes to store the secrets; remove it afterwards (docs/deploy.md).')
param grantOperatorSecretsOfficer bool

// Built-in role definition ids (the same in every tenant).
// Storage Blob Data Owner: what the Functions documentation requires for identity-based host
// storage (the host creates its own containers, azure-webjobs-hosts and -secrets, and holds blob
// leases); the platform also reads the deployment package with it.
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
// Storage Table Data Contributor: the app's entities in its own tables.
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
// Storage Queue Data Contributor: the app sends deliveries; the queue trigger reads, deletes and
// moves poison messages (it covers Queue Data Reader + Message Processor + Message Sender).
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
// Key Vault Secrets User: read a secret (the client secret's Key Vault reference).
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'
// Key Vault Secrets Officer: read and write a secret; the only built-in role with setSecret short
// of Key Vault Administrator.
var keyVaultSecretsOfficer = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
// Monitoring Metrics Publisher: send telemetry to Application Insights with an Entra ID token.
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = [
  for tableName in tableNames: {
    parent: tableService
    name: tableName
  }
]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = [
  for queueName in queueNames: {
    parent: queueService
    name: queueName
  }
]

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource refreshTokenSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = {
  parent: vault
  name: refreshTokenName
}

resource clientSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = {
  parent: vault
  name: clientSecretName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Host storage: Blob Data Owner on the account (the host names its containers itself).
resource hostBlobAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Event storage: Table Data Contributor on each table, not on the account.
resource tableAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (tableName, i) in tableNames: {
    name: guid(tables[i].id, principalId, storageTableDataContributor)
    scope: tables[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]

// Deliveries: Queue Data Contributor on each queue, not on the account.
resource queueAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (queueName, i) in queueNames: {
    name: guid(queues[i].id, principalId, storageQueueDataContributor)
    scope: queues[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]

// The refresh token: read (Key Vault reference, rotation) and write (rotation stores each new
// token) on that one secret, not on the vault.
resource refreshTokenAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (refreshTokenStored) {
  name: guid(refreshTokenSecret.id, principalId, keyVaultSecretsOfficer)
  scope: refreshTokenSecret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficer)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// The client secret (credential type secret only): read on that one secret.
resource clientSecretAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (clientSecretStored) {
  name: guid(clientSecret.id, principalId, keyVaultSecretsUser)
  scope: clientSecret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Telemetry with Entra ID authentication (local auth is disabled on the component).
resource telemetryAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, principalId, monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// The operator stores the first secrets (opt-in). On the vault, because the secrets do not exist
// before the operator creates them; the principal type is left to Azure (a user or a service
// principal).
resource operatorSecretsAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantOperatorSecretsOfficer && !empty(operatorPrincipalId)) {
  name: guid(vault.id, operatorPrincipalId, keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficer)
    principalId: operatorPrincipalId
  }
}
