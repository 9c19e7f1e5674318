// Storage for the Functions host (AzureWebJobsStorage), the Flex Consumption deployment package,
// and the gateway's Partner Center events: the tables and the delivery queue the app uses. Shared
// keys are disabled: the app reaches it only through its managed identity. With vnetEnabled the
// account takes no public traffic at all; the app reaches it through private endpoints.

@description('Azure region of the resources.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Storage account name (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Blob container that holds the deployment package.')
param deploymentContainerName string

@description('Tables the app creates entities in (Partner Center events, subscriptions, deliveries).')
param tableNames array

@description('Queues the app and its queue trigger use; the trigger\'s poison queue must be listed too, so it exists before the app needs it and can be a role assignment scope.')
param queueNames array

@description('Refuse public network traffic (reachable only through private endpoints).')
param vnetEnabled bool

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  //checkov:skip=CKV_AZURE_206: Holds only the host's leases and keys and the deployment package, both recreated by the next deployment; geo-replication would add cost without protecting anything that cannot be rebuilt.
  //checkov:skip=CKV_AZURE_35: Deny by default is the default (vnetEnabled true); with vnetEnabled false the app has no private network, so Flex Consumption reaches the account over the public endpoint, still Entra ID only (shared keys disabled, RBAC per identity).
  //checkov:skip=CKV_AZURE_59: Public network access is Disabled by default (vnetEnabled true); checkov cannot evaluate the condition that keeps it Enabled for a deployment without a virtual network.
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    isLocalUserEnabled: false
    isSftpEnabled: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: vnetEnabled ? 'Disabled' : 'Enabled'
    // As Azure's Flex Consumption samples do: no trusted-service bypass on a private account.
    networkAcls: {
      bypass: vnetEnabled ? 'None' : 'AzureServices'
      defaultAction: vnetEnabled ? 'Deny' : 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
        }
        file: {
          enabled: true
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for queueName in queueNames: {
    parent: queueService
    name: queueName
  }
]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for tableName in tableNames: {
    parent: tableService
    name: tableName
  }
]

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
