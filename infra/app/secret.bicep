// One version of one Key Vault secret. Kept in its own module so the caller decides with a module
// condition whether a version is written at all (an empty value writes none).

@description('Name of the existing Key Vault.')
param vaultName string

@description('Name of the secret.')
param name string

@secure()
@description('Value of the new secret version.')
param value string

@description('What the secret holds (Key Vault content type).')
param contentType string

@description('When the value stops being valid (ISO 8601); becomes the secret\'s expiry.')
param expiresOn string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: name
  properties: {
    value: value
    contentType: contentType
    attributes: {
      enabled: true
      exp: dateTimeToEpoch(expiresOn)
    }
  }
}
