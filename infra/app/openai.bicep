// One Azure OpenAI account in one region, keyless (disableLocalAuth), with its model deployments. The custom
// subdomain is the account name, which is how main.bicep knows the endpoint for SLUICE_ENDPOINTS in advance.
param name string
param location string
param tags object = {}
@allowed(['Enabled', 'Disabled'])
param publicNetworkAccess string = 'Enabled'

@description('[{name, model, version, sku, capacity}] — see openAiRegion in main.bicep.')
param deployments array

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  name: name
  location: location
  tags: tags
  kind: 'OpenAI'
  sku: { name: 'S0' }
  properties: {
    customSubDomainName: name
    disableLocalAuth: true
    publicNetworkAccess: publicNetworkAccess
    networkAcls: { defaultAction: publicNetworkAccess == 'Enabled' ? 'Allow' : 'Deny' }
  }
}

// Azure rejects concurrent deployment writes on one account, hence one at a time.
@batchSize(1)
resource modelDeployments 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = [for d in deployments: {
  parent: account
  name: d.name
  sku: {
    name: d.sku
    capacity: d.capacity
  }
  properties: {
    model: {
      format: 'OpenAI'
      name: d.model
      version: d.version
    }
    versionUpgradeOption: 'NoAutoUpgrade'
  }
}]

output name string = account.name
output id string = account.id
output endpoint string = account.properties.endpoint
