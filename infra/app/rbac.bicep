// Least-privilege data roles for the app identity (and, only when main.bicep's grantDeployerDataAccess is on, the
// person running azd, for local runs against the cloud resources). Role definition ids are Azure built-in roles.
param appPrincipalId string
@description('Object id of the deploying user, set only when grantDeployerDataAccess is on. Empty: no user assignments.')
param userPrincipalId string = ''
param userPrincipalType string = 'User'
param storageAccountName string
param applicationInsightsName string
param openAiAccountNames string[]

var roles = {
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  cognitiveServicesOpenAIUser: '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

// Blob Data Contributor, not Owner: the code and the Functions host read, write, delete and lease blobs and create
// containers, all in Contributor; Owner adds POSIX ACLs and ownership, which nothing here uses.
// Scope: the account, because narrower scopes miss what is created at runtime: the app creates its tables,
// containers and queues on first use (so it also runs on a fresh account), the host makes its own containers
// (azure-webjobs-hosts, azure-webjobs-secrets) and diagnostic tables, queue lanes beyond lane 0 and their poison
// queues appear on first use, and the app posts to the queues producers name in reply_to.
// The account holds only Sluice's data, so container or table scopes would take away nothing the app may keep.
var storageRoles = [roles.storageBlobDataContributor, roles.storageQueueDataContributor, roles.storageTableDataContributor]
var withUser = !empty(userPrincipalId)

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource openAiAccounts 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = [for n in openAiAccountNames: {
  name: n
}]

resource appStorageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in storageRoles: {
  name: guid(storage.id, appPrincipalId, role)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

resource appOpenAiUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (n, i) in openAiAccountNames: {
  name: guid(openAiAccounts[i].id, appPrincipalId, roles.cognitiveServicesOpenAIUser)
  scope: openAiAccounts[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesOpenAIUser)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

resource appMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, appPrincipalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource userStorageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in storageRoles: if (withUser) {
  name: guid(storage.id, userPrincipalId, role)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}]

resource userOpenAiUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (n, i) in openAiAccountNames: if (withUser) {
  name: guid(openAiAccounts[i].id, userPrincipalId, roles.cognitiveServicesOpenAIUser)
  scope: openAiAccounts[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesOpenAIUser)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}]

resource userMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (withUser) {
  name: guid(appInsights.id, userPrincipalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}
