// One private endpoint of one service (a storage sub-service or the Key Vault), its private DNS
// zone and the zone's link to the virtual network, so that the service's public host name
// resolves to the endpoint's private address from inside the network.

@description('Azure region of the endpoint.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Name of the private endpoint.')
param name string

@description('Resource id of the service the endpoint connects to.')
param serviceId string

@description('Sub-resource of the service (blob, queue, table, vault).')
@allowed([
  'blob'
  'queue'
  'table'
  'vault'
])
param groupId string

@description('Private DNS zone of that sub-resource, e.g. privatelink.blob.core.windows.net.')
param dnsZoneName string

@description('Subnet that holds the endpoint.')
param subnetId string

@description('Virtual network the DNS zone is linked to.')
param vnetId string

resource dnsZone 'Microsoft.Network/privateDnsZones@2024-06-01' = {
  name: dnsZoneName
  location: 'global'
  tags: tags
}

resource dnsZoneLink 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2024-06-01' = {
  parent: dnsZone
  name: '${name}-link'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: vnetId
    }
  }
}

resource endpoint 'Microsoft.Network/privateEndpoints@2024-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    subnet: {
      id: subnetId
    }
    privateLinkServiceConnections: [
      {
        name: name
        properties: {
          privateLinkServiceId: serviceId
          groupIds: [
            groupId
          ]
        }
      }
    ]
  }
}

resource dnsZoneGroup 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = {
  parent: endpoint
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      {
        name: groupId
        properties: {
          privateDnsZoneId: dnsZone.id
        }
      }
    ]
  }
}
