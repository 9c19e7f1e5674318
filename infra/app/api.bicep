// The function app: Flex Consumption plan (FC1, Linux), Python 3.11, user-assigned managed
// identity for host storage, the deployment container, Key Vault references and telemetry.
//
// The app settings (siteConfig.appSettings, built from the variables below) are exactly the
// settings partnercenter/_config.py reads (SETTINGS with deployed=True) plus what the platform
// needs; tests/infra/test_settings_contract.py checks both directions. Flex Consumption rejects or
// ignores FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION, WEBSITE_RUN_FROM_PACKAGE and the
// other settings it replaced with functionAppConfig, so none of them appear here.

@description('Azure region of the resources.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Name of the Flex Consumption plan.')
param planName string

@description('Name of the function app (also the host name prefix).')
param name string

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('Client id of the user-assigned identity.')
param identityClientId string

@description('Name of the storage account for the host and the deployment package.')
param storageAccountName string

@description('Blob endpoint of that storage account.')
param storageBlobEndpoint string

@description('Container that holds the deployment package.')
param deploymentContainerName string

@description('Application Insights connection string (holds no secret: local auth is disabled).')
param applicationInsightsConnectionString string

@description('URI of the Key Vault holding the secrets, ending with a slash.')
param keyVaultUri string

@description('Secret name of the client secret in the vault.')
param clientSecretName string

@description('Secret name of the Partner Center refresh token in the vault.')
param refreshTokenName string

@description('How the app registration proves its identity: federated (managed identity, no secret) or secret.')
@allowed([
  'federated'
  'secret'
])
param credentialType string

@description('Spread the plan\'s instances over availability zones (only in regions where Flex Consumption supports it).')
param zoneRedundant bool

@description('Maximum number of instances.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int

@description('Memory of each instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int

@description('Concurrent HTTP requests per instance; also the Python worker\'s thread count.')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int

@description('Browser origins allowed by CORS; empty turns CORS off.')
param allowedOrigins array

@description('Subnet the app is integrated into (outbound traffic, private endpoints); empty for none.')
param virtualNetworkSubnetId string

@description('Partner Center REST base URL.')
param partnerCenterApiUrl string

@description('Delegated scope requested for Partner Center tokens.')
param partnerCenterScope string

@description('Entra ID authority host.')
param authorityHost string

@description('The partner\'s Entra tenant id.')
param tenantId string

@description('Client id of the gateway\'s app registration.')
param clientId string

@description('X-Locale sent to Partner Center.')
param partnerCenterLocale string

@description('MS-PartnerCenter-Application header value.')
param partnerCenterApplicationName string

@description('Time budget of one call, in seconds.')
param partnerCenterDeadlineSeconds int

@description('Attempts per Partner Center call, the first one included.')
param partnerCenterMaxAttempts int

@description('Users whose Partner Center tokens are cached.')
param tokenCacheMaxUsers int

@description('How long the relationship request URL is cached, in seconds (0 turns the cache off).')
param relationshipRequestCacheSeconds int

@description('Comma-separated client ids allowed to call the gateway; empty: any app of the tenant.')
param allowedClientAppIds string = ''

@description('Hosts (comma-separated) allowed to serve the certificate Partner Center signs webhook deliveries with.')
param webhookCertificateHosts string = '3psostorageacct.blob.core.windows.net'

// Platform settings: identity-based host storage, and telemetry authenticated with the identity
// (local auth is disabled on Application Insights).
var platformSettings = {
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // The Python worker's OpenTelemetry integration (host.json telemetryMode: OpenTelemetry), so
  // the host's request telemetry and the app's spans share one operation.
  PYTHON_ENABLE_OPENTELEMETRY: 'true'
}

// Service settings (partnercenter/_config.py). Secrets are Key Vault references without a
// version, so a new secret version is picked up without redeploying. The timer function's
// schedule is CONSENT_ROTATION_SCHEDULE (%CONSENT_ROTATION_SCHEDULE%): the setting must exist.
var serviceSettings = {
  PARTNER_CENTER_API_URL: partnerCenterApiUrl
  PARTNER_CENTER_SCOPE: partnerCenterScope
  AZURE_AUTHORITY_HOST: authorityHost
  AZURE_TENANT_ID: tenantId
  AZURE_CLIENT_ID: clientId
  // The service user's refresh token is read (and rotated) by the app itself, not through a Key
  // Vault reference: a reference is cached by the platform and cannot be written back.
  KEY_VAULT_URL: keyVaultUri
  PARTNER_CENTER_REFRESH_TOKEN_SECRET: refreshTokenName
  CONSENT_ROTATION_SCHEDULE: '0 0 3 * * *'
  PARTNER_CENTER_LOCALE: partnerCenterLocale
  PARTNER_CENTER_APPLICATION_NAME: partnerCenterApplicationName
  PARTNER_CENTER_DEADLINE_SECONDS: string(partnerCenterDeadlineSeconds)
  PARTNER_CENTER_MAX_ATTEMPTS: string(partnerCenterMaxAttempts)
  TOKEN_CACHE_MAX_USERS: string(tokenCacheMaxUsers)
  RELATIONSHIP_REQUEST_CACHE_SECONDS: string(relationshipRequestCacheSeconds)
  ALLOWED_CLIENT_APP_IDS: allowedClientAppIds
  EVENT_CALLBACK_HOSTS: '.logic.azure.com,.environment.api.powerplatform.com'
  WEBHOOK_CERTIFICATE_HOSTS: webhookCertificateHosts
  PYTHON_THREADPOOL_THREAD_COUNT: string(httpPerInstanceConcurrency)
}

// The service requires exactly one client credential, so only the chosen one is set.
var credentialSettings = (credentialType == 'secret') ? {
  AZURE_CLIENT_SECRET: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/${clientSecretName}/)'
} : {
  AZURE_FEDERATED_IDENTITY_CLIENT_ID: identityClientId
}

var appSettings = union(platformSettings, serviceSettings, credentialSettings)

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  //checkov:skip=CKV_AZURE_225: Zone redundancy of Flex Consumption exists only in some regions, so it is the parameter zoneRedundant (default false) rather than a constant that would fail elsewhere.
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  //checkov:skip=CKV_AZURE_212: numberOfWorkers belongs to dedicated App Service plans; Flex Consumption scales instances itself (functionAppConfig.scaleAndConcurrency).
  //checkov:skip=CKV_AZURE_213: App Service health check (siteConfig.healthCheckPath) is a dedicated-plan feature; on Flex Consumption the platform manages instances and scales to zero. /api/health is probed by the deployment smoke test instead.
  //checkov:skip=CKV_AZURE_17: Callers (Power Automate connectors, daemons) authenticate with Entra ID bearer tokens; they cannot present client certificates.
  //checkov:skip=CKV_AZURE_222: A public API by design: Power Automate and other cloud callers reach it over the internet; every route except /api/health requires an Entra ID token.
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    // Flex Consumption sends all outbound traffic through the integrated subnet, so storage, Key
    // Vault references and the queue trigger reach the private endpoints (no vnetRouteAllEnabled:
    // Flex does not use it).
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
    // checkov's Bicep parser reads at most four comment lines in a row there: this skip sits here, not
    // with the others above, or the whole file would silently drop out of the scan.
    //checkov:skip=CKV_AZURE_78: Flex Consumption rejects siteConfig.ftpsState ("The following site configuration property (Site.SiteConfig.FtpsState) for Flex Consumption sites is invalid"); FTP publishing is off through basicPublishingCredentialsPolicies 'ftp' (allow false) below.
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
      remoteDebuggingEnabled: false
      cors: {
        allowedOrigins: allowedOrigins
        supportCredentials: false
      }
      appSettings: [for setting in items(appSettings): {
        name: setting.key
        value: setting.value
      }]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Deployments authenticate with Entra ID (azure/login, AzureCLI@2, azd); no FTP or SCM passwords.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = site.name
output uri string = 'https://${site.properties.defaultHostName}'
