// Optional private networking (enablePrivateNetworking): a VNet with a subnet the Function App integrates into and
// a subnet for private endpoints to storage (blob, queue, table) and every Azure OpenAI account, wherever its
// region. Private DNS zones make the usual host names resolve to the private addresses from inside the VNet.
param vnetName string
param location string
param tags object = {}
param storageAccountName string
param openAiAccountNames string[]
param addressPrefix string = '10.60.0.0/16'
param appSubnetPrefix string = '10.60.1.0/24'
param privateEndpointSubnetPrefix string = '10.60.2.0/24'

var storageSuffix = environment().suffixes.storage
var storageServices = ['blob', 'queue', 'table']
var openAiZone = 'privatelink.openai.azure.com'

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: vnetName
  location: location
  tags: tags
  properties: {
    addressSpace: { addressPrefixes: [addressPrefix] }
    subnets: [
      {
        name: 'app'
        properties: {
          addressPrefix: appSubnetPrefix
          // Flex Consumption integrates through a subnet delegated to Microsoft.App/environments.
          delegations: [{ name: 'flex', properties: { serviceName: 'Microsoft.App/environments' } }]
        }
      }
      {
        name: 'private-endpoints'
        properties: {
          addressPrefix: privateEndpointSubnetPrefix
          privateEndpointNetworkPolicies: 'Disabled'
        }
      }
    ]
  }
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource openAiAccounts 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = [for n in openAiAccountNames: {
  name: n
}]

resource storageZones 'Microsoft.Network/privateDnsZones@2020-06-01' = [for s in storageServices: {
  name: 'privatelink.${s}.${storageSuffix}'
  location: 'global'
  tags: tags
}]

resource storageZoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = [for (s, i) in storageServices: {
  parent: storageZones[i]
  name: vnetName
  location: 'global'
  properties: {
    virtualNetwork: { id: vnet.id }
    registrationEnabled: false
  }
}]

resource openAiDnsZone 'Microsoft.Network/privateDnsZones@2020-06-01' = {
  name: openAiZone
  location: 'global'
  tags: tags
}

resource openAiZoneLink 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = {
  parent: openAiDnsZone
  name: vnetName
  location: 'global'
  properties: {
    virtualNetwork: { id: vnet.id }
    registrationEnabled: false
  }
}

resource storageEndpoints 'Microsoft.Network/privateEndpoints@2024-05-01' = [for (s, i) in storageServices: {
  name: 'pe-${storageAccountName}-${s}'
  location: location
  tags: tags
  properties: {
    subnet: { id: vnet.properties.subnets[1].id }
    privateLinkServiceConnections: [
      {
        name: '${storageAccountName}-${s}'
        properties: {
          privateLinkServiceId: storage.id
          groupIds: [s]
        }
      }
    ]
  }
}]

resource storageEndpointDns 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = [for (s, i) in storageServices: {
  parent: storageEndpoints[i]
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [{ name: s, properties: { privateDnsZoneId: storageZones[i].id } }]
  }
}]

resource openAiEndpoints 'Microsoft.Network/privateEndpoints@2024-05-01' = [for (n, i) in openAiAccountNames: {
  name: 'pe-${n}'
  location: location
  tags: tags
  properties: {
    subnet: { id: vnet.properties.subnets[1].id }
    privateLinkServiceConnections: [
      {
        name: n
        properties: {
          privateLinkServiceId: openAiAccounts[i].id
          groupIds: ['account']
        }
      }
    ]
  }
}]

resource openAiEndpointDns 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = [for (n, i) in openAiAccountNames: {
  parent: openAiEndpoints[i]
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [{ name: 'openai', properties: { privateDnsZoneId: openAiDnsZone.id } }]
  }
}]

output vnetId string = vnet.id
output appSubnetId string = vnet.properties.subnets[0].id
