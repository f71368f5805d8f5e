// The storage account: Functions host state, the jobs queue and its poison queue, job/budget/usage tables, payload
// blobs and the deployment package container, and the lifecycle policy that deletes old payloads and files. Entra ID
// only: shared keys are disabled.
param name string
param location string
param tags object = {}
@allowed(['Enabled', 'Disabled'])
param publicNetworkAccess string = 'Enabled'
param queues string[]
param tables string[]
param containers string[]

// Retention (docs/retention.md): the lifecycle policy deletes blobs by prefix and age; the app's retention sweep
// deletes the same blobs with the rows that point at them, so local runs (Azurite has no lifecycle management) match.
@description('Container of job payload blobs (SLUICE_PAYLOAD_CONTAINER): requests/ and responses/ are deleted by age.')
param payloadContainer string
@minValue(1)
@description('Days after creation when job payload blobs are deleted.')
param payloadRetentionDays int
@description('Container of uploaded and batch output files (SLUICE_FILES_CONTAINER): deleted by age.')
param filesContainer string
@minValue(1)
@description('Days after creation when files are deleted: the longest a file can be kept.')
param filesRetentionDays int

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    defaultToOAuthAuthentication: true
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      defaultAction: publicNetworkAccess == 'Enabled' ? 'Allow' : 'Deny'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'job-payloads'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: { blobTypes: ['blockBlob'], prefixMatch: ['${payloadContainer}/requests/', '${payloadContainer}/responses/'] }
            actions: { baseBlob: { delete: { daysAfterCreationGreaterThan: payloadRetentionDays } } }
          }
        }
        {
          name: 'files'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: { blobTypes: ['blockBlob'], prefixMatch: ['${filesContainer}/'] }
            actions: { baseBlob: { delete: { daysAfterCreationGreaterThan: filesRetentionDays } } }
          }
        }
      ]
    }
  }
  dependsOn: [blobContainers]
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource blobContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for c in containers: {
  parent: blobService
  name: c
  properties: { publicAccess: 'None' }
}]

resource storageQueues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for q in queues: {
  parent: queueService
  name: q
}]

resource storageTables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [for t in tables: {
  parent: tableService
  name: t
}]

output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
output tableEndpoint string = account.properties.primaryEndpoints.table
