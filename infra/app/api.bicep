// The Function App on Flex Consumption (FC1, Linux, Node.js 22). Runs as the user-assigned identity; the deployment
// package lives in a blob container it reads with that identity. No keys or connection strings with secrets.
param name string
param planName string
param location string
param tags object = {}
param identityId string
param identityClientId string
param storageAccountName string
param deploymentContainerName string
param applicationInsightsName string
param maximumInstanceCount int
@description('Queue messages an instance fetches at a time (host.json extensions.queues.batchSize), derived in main.bicep.')
param queueBatchSize int
@description('Fetch the next batch once in-flight messages drop to this (host.json newBatchThreshold).')
param queueNewBatchThreshold int
param instanceMemoryMB int
@description('The SLUICE_* settings, built in main.bicep.')
param appSettings object
@description('Subnet for VNet integration (delegated to Microsoft.App/environments). Empty: none.')
param virtualNetworkSubnetId string = ''
@description('Entra ID app registration for App Service Authentication. Empty: API keys only.')
param entraClientId string = ''

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Identity-based connections for the Functions host (queue triggers) and for the app's own
// clients (src/config.ts storageOf reads exactly these), plus Entra ID auth for Application Insights.
// FUNCTIONS_WORKER_RUNTIME and FUNCTIONS_EXTENSION_VERSION must not be set on Flex Consumption (runtime below).
var platformSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // DefaultAzureCredential picks the user-assigned identity from this where a client is built without a client id.
  AZURE_CLIENT_ID: identityClientId
  // host.json's queue batch, overridden with the values the quota calls for (main.bicep, docs/deploy.md).
  AzureFunctionsJobHost__extensions__queues__batchSize: string(queueBatchSize)
  AzureFunctionsJobHost__extensions__queues__newBatchThreshold: string(queueNewBatchThreshold)
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Key Vault references in app settings (@Microsoft.KeyVault(SecretUri=…)) resolve as the user-assigned identity;
    // without this the platform looks for a system-assigned one, which the app does not have (docs/deploy.md).
    keyVaultReferenceIdentity: identityId
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'node'
        version: '22'
      }
    }
  }
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: union(appSettings, platformSettings)
}

// Basic-auth publishing off: azd deploys with Entra ID.
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: { allow: false }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: { allow: false }
}

// App Service Authentication validates Entra ID tokens and hands the app x-ms-client-principal (and strips any
// client-sent copy). Anonymous requests still reach the app, which then wants a Sluice API key.
resource auth 'Microsoft.Web/sites/config@2024-04-01' = if (!empty(entraClientId)) {
  parent: site
  name: 'authsettingsV2'
  properties: {
    globalValidation: {
      requireAuthentication: false
      unauthenticatedClientAction: 'AllowAnonymous'
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: entraClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [entraClientId, 'api://${entraClientId}']
        }
      }
    }
    platform: {
      enabled: true
    }
  }
}

output name string = site.name
output url string = 'https://${site.properties.defaultHostName}'
