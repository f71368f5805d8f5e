// Sluice in one resource group: Flex Consumption Function App, storage, Azure OpenAI in several regions, monitoring,
// cost budget, alerts, workbook and Portal dashboard. Keyless: one user-assigned identity and Entra ID everywhere.
// `azd up` deploys it (azure.yaml, infra/main.parameters.json); docs/deploy.md explains every parameter.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; with the subscription and location it seeds every resource name.')
param environmentName string

@minLength(1)
@description('Region of the Function App, storage and monitoring. Must offer Flex Consumption.')
@metadata({ azd: { type: 'location' } })
param location string

@description('Object id of the person running azd. Gets data roles only with grantDeployerDataAccess.')
param principalId string = ''

@description('Give principalId the app\'s data roles (every team\'s prompts and outputs, and write access to the teams table, which is admin power), for local runs against the cloud. For dev environments only: off, the deploying user has no standing data access.')
param grantDeployerDataAccess bool = false

@allowed(['User', 'ServicePrincipal'])
@description('Kind of principalId (ServicePrincipal when a pipeline runs azd).')
param principalType string = 'User'

@description('Name of the resource group to create. Empty: rg-<environmentName>.')
param resourceGroupName string = ''

type modelDeployment = {
  @description('Deployment name inside the account; Sluice calls it by this name.')
  name: string
  @description('Model name, e.g. gpt-4o-mini; also the logical model clients ask Sluice for.')
  model: string
  @description('Model version, e.g. 2024-07-18.')
  version: string
  sku: 'GlobalStandard' | 'DataZoneStandard' | 'Standard'
  @description('Quota units: 1 unit = 1,000 tokens per minute (and 6 requests per minute).')
  @minValue(1)
  capacity: int
}

type openAiRegion = {
  @description('Azure region of the account, e.g. swedencentral. Also the region label in SLUICE_ENDPOINTS.')
  location: string
  @description('Account name (also its custom subdomain). Default: oai-<token>-<location>.')
  name: string?
  @description('Lower is tried first. Default: position in the list, starting at 1.')
  @minValue(0)
  priority: int?
  deployments: modelDeployment[]
}

@minLength(1)
@description('Azure OpenAI accounts, one per region, with their model deployments. SLUICE_ENDPOINTS is generated from this.')
param openAiRegions openAiRegion[]

@minValue(0)
@maxValue(1000)
@description('Flex Consumption: most instances the app scales out to. 0: derived from the quota (fleet* parameters below; docs/deploy.md, "Fleet size follows the quota").')
param maximumInstanceCount int = 0

@minValue(0)
@maxValue(32)
@description('Queue messages an instance fetches at a time (host.json batchSize, set as an app setting; newBatchThreshold is half of it). 0: derived from the quota.')
param queueBatchSize int = 0

// The fleet-size rule's inputs. Defaults equal FLEET_SIZING_DEFAULTS in src/core/fleetSize.ts (test/infra/fleetSize.test.ts).
@minValue(1)
@description('Fleet size: tokens a typical job is charged (prompt + max_tokens).')
param fleetTypicalChargeTokens int = 1500

@minValue(1)
@description('Fleet size: 95th percentile of a model call\'s duration, seconds.')
param fleetP95LatencySeconds int = 10

@minValue(100)
@description('Fleet size: messages held per call the quota can run at once, percent (jobs waiting their turn as well as in a call).')
param fleetHeadroomPercent int = 200

@minValue(1)
@description('Fleet size: worker instances to stay within before each instance fetches more messages (batchSize up to 32).')
param fleetWorkerInstanceTarget int = 50

@minValue(0)
@description('Fleet size: instances left for the HTTP functions, the submission and batch queues and the timers (each scales on instances of its own).')
param fleetOtherInstances int = 10

@allowed([512, 2048, 4096])
@description('Flex Consumption: memory per instance, MB.')
param instanceMemoryMB int = 2048

@minValue(1)
@description('Monthly spend limit, USD: the resource-group Consumption budget and Sluice\'s own SLUICE_BUDGET_MONTHLY_USD.')
param budgetMonthlyUsd int

@description('Budget start (yyyy-MM-01). Empty on the first deployment: this month. Azure refuses to change it later, so the
output SLUICE_BUDGET_START_DATE pins it in the azd environment and main.parameters.json passes it back.')
param budgetStartDate string = ''

@description('Do not set: the first day of the current month, the budget start on the first deployment.')
param firstOfThisMonth string = utcNow('yyyy-MM-01')

@minLength(3)
@description('Where budget notifications and alerts are emailed.')
param alertEmail string

@description('NCRONTAB schedule of the batch sweep (SLUICE_BATCH_SWEEP_SCHEDULE). Every run wakes the app: every 5 s (the code default) means Flex Consumption never scales to zero.')
param batchSweepSchedule string = '*/5 * * * * *'

@description('NCRONTAB schedule of the telemetry rollup (SLUICE_ROLLUP_SCHEDULE). Default: every minute, as in src/configSchema.ts. Each run wakes the app.')
param rollupSchedule string = '0 */1 * * * *'

@minValue(0)
@maxValue(16)
@description('Queue lanes per priority (SLUICE_QUEUE_LANES). 0: one per model in openAiRegions (at most 16). With the dispatcher (the default) each model travels in a lane of its own, so Flex scales a worker fleet per model; with SLUICE_DISPATCH=false teams are spread over the lanes. Must not change while jobs are queued.')
param queueLanes int = 0

@description('Entra ID app registration (client id) for App Service Authentication. Empty: API keys only.')
param entraClientId string = ''

@description('Entra ID principal → team, JSON, e.g. {"app:<application id>":"search","group:<object id>":"search"} (SLUICE_ENTRA_TEAMS). Needs entraClientId.')
param entraTeams string = ''

@description('Entra ID selectors granted the Sluice admin role, comma-separated, e.g. role:Sluice.Admin (SLUICE_ENTRA_ADMINS). Needs entraClientId.')
param entraAdmins string = ''

// Retention (docs/retention.md): the same periods feed the app settings and the storage lifecycle policy.
@minValue(1)
@description('Days a finished job\'s record and its payload blobs (prompt, answer) are kept (SLUICE_RETENTION_JOBS_DAYS).')
param retentionJobsDays int = 30

@minValue(1)
@description('Days usage rows are kept (SLUICE_RETENTION_USAGE_DAYS): more than a year, for year-over-year cost. Rollup figures are kept for good.')
param retentionUsageDays int = 400

@minValue(1)
@description('Days a file is kept when its upload gave no expires_after (SLUICE_RETENTION_FILES_DAYS); as OpenAI for purpose=batch.')
param retentionFilesDays int = 30

@description('NCRONTAB schedule of the retention sweep (SLUICE_RETENTION_SWEEP_SCHEDULE).')
param retentionSweepSchedule string = '0 */5 * * * *'

@minValue(10)
@description('Rows or blobs one retention sweep run looks at (SLUICE_RETENTION_SWEEP_MAX_ROWS).')
param retentionSweepMaxRows int = 2000

@description('Private endpoints for storage and Azure OpenAI, VNet integration for the app, private DNS zones.')
param enablePrivateNetworking bool = false

@description('Alert thresholds. See infra/app/alerts.bicep.')
param alertThresholds object = {
  throttledSharePercent: 20
  failedJobs: 5
  p95LatencyMs: 60000
  jobsWaiting: 1000
  queueDepth: 1000
  failovers: 10
}

var effectiveBudgetStartDate = empty(budgetStartDate) ? firstOfThisMonth : budgetStartDate

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }

// Storage names: the one definition both the resources and the app settings use. Equal to the defaults in
// src/configSchema.ts (test/infra/storage.test.ts checks both directions).
var jobsQueueName = 'sluice-jobs'
var jobsPoisonQueueName = '${jobsQueueName}-poison'
var submitQueueName = 'sluice-submit'
var submitPoisonQueueName = '${submitQueueName}-poison'
var submitDeadLetterQueueName = 'sluice-submit-deadletter'
var batchQueueName = 'sluice-batches'
var batchPoisonQueueName = '${batchQueueName}-poison'
var jobsTableName = 'sluicejobs'
var batchesTableName = 'sluicebatches'
var breakerTableName = 'sluicebreakers'
var budgetTableName = 'sluicebudget'
var usageTableName = 'sluiceusage'
var rollupTableName = 'sluicerollup'
var teamsTableName = 'sluiceteams'
// The exact cache of synchronous answers.
var cacheTableName = 'sluicecache'
// Per-team backlog counters: the app names this table after SLUICE_JOBS_TABLE (src/runtime/services.ts).
var backlogTableName = '${jobsTableName}backlog'
var retentionTableName = 'sluiceretention'
var teamQueueTableName = 'sluiceteamqueues'
var payloadContainerName = 'sluice-payloads'
var filesContainerName = 'sluice-files'
var deploymentContainerName = 'app-package'

var functionAppName = '${abbrs.webSitesFunctions}${resourceToken}'
var openAiAccountNames = map(openAiRegions, r => r.?name ?? '${abbrs.openAiAccounts}${resourceToken}-${r.location}')

// SLUICE_ENDPOINTS, generated: one entry per model deployment. tpm = capacity × 1,000; rpm = capacity × 6 (Azure's
// ratio for chat models). The custom subdomain is the account name, so the endpoint is known before deployment.
// modelVersion is the deployment's model version, reported with embeddings answers and kept in their usage rows.
// test/infra/endpoints.test.ts mirrors this rule and parses the result with the app's own schema.
var sluiceEndpoints = flatten(map(range(0, length(openAiRegions)), i => map(openAiRegions[i].deployments, d => {
  region: openAiRegions[i].location
  endpoint: 'https://${openAiAccountNames[i]}.openai.azure.com/'
  deployment: d.name
  model: d.model
  modelVersion: d.version
  priority: openAiRegions[i].?priority ?? (i + 1)
  tpm: d.capacity * 1000
  rpm: d.capacity * 6
  auth: 'managed-identity'
})))

// Fleet size follows the quota (docs/deploy.md): the calls a deployment can have in flight are its jobs per second ×
// call latency, so instances beyond what the summed quota keeps busy only hold messages that wait. Integer steps
// exactly as src/core/fleetSize.ts takes them (Bicep divides integers by truncation; (a + b - 1) / b rounds up).
var fleetQuotaTpm = reduce(flatten(map(openAiRegions, r => map(r.deployments, d => d.capacity * 1000))), 0, (total, tpm) => total + tpm)
// Distinct models: with the dispatcher, a model's jobs travel in a queue lane of its own (src/core/teams/lanes.ts).
var fleetModelCount = length(reduce(flatten(map(openAiRegions, r => map(r.deployments, d => d.model))), [], (models, m) => contains(models, m) ? models : concat(models, [m])))
var fleetQueueLanes = queueLanes > 0 ? queueLanes : min(16, max(1, fleetModelCount))
var fleetConcurrency = (fleetQuotaTpm * fleetP95LatencySeconds * fleetHeadroomPercent + 60 * fleetTypicalChargeTokens * 100 - 1) / (60 * fleetTypicalChargeTokens * 100)
var fleetDerivedBatchSize = min(32, max(16, (fleetConcurrency * 2 + 3 * fleetWorkerInstanceTarget - 1) / (3 * fleetWorkerInstanceTarget)))
var fleetBatchSize = queueBatchSize > 0 ? queueBatchSize : fleetDerivedBatchSize
var fleetNewBatchThreshold = fleetBatchSize / 2
var fleetPerInstanceConcurrency = fleetBatchSize + fleetNewBatchThreshold
var fleetWorkerInstances = (fleetConcurrency + fleetPerInstanceConcurrency - 1) / fleetPerInstanceConcurrency
// Every lane × priority is a worker function Flex scales on instances of its own, rounding up: one more each.
var fleetDerivedMaximumInstanceCount = min(1000, max(1, fleetWorkerInstances + 2 * fleetQueueLanes + fleetOtherInstances))
var fleetMaximumInstanceCount = maximumInstanceCount > 0 ? maximumInstanceCount : fleetDerivedMaximumInstanceCount
// The dispatcher keeps the jobs queue p95 latency × headroom seconds of the pace deep: what the concurrency above holds.
var fleetDispatchDepthSeconds = max(1, (fleetP95LatencySeconds * fleetHeadroomPercent + 99) / 100)

// The api module turns on App Service Authentication exactly when entraClientId is set; only then does the platform
// validate tokens and strip forged x-ms-client-principal headers. A mapping without it is refused, not deployed.
var entraAuth = !empty(entraClientId)

// Every SLUICE_* setting the app needs in Azure (the api module adds the storage and Application Insights
// identity settings). Tunables with code defaults are left out: see OPTIONAL_SETTINGS in test/infra/settings.test.ts.
var sluiceSettings = {
  SLUICE_ENDPOINTS: string(sluiceEndpoints)
  SLUICE_JOBS_QUEUE: jobsQueueName
  SLUICE_JOBS_TABLE: jobsTableName
  SLUICE_PAYLOAD_CONTAINER: payloadContainerName
  SLUICE_SUBMIT_QUEUE: submitQueueName
  SLUICE_SUBMIT_DEADLETTER_QUEUE: submitDeadLetterQueueName
  SLUICE_BATCH_QUEUE: batchQueueName
  SLUICE_BATCHES_TABLE: batchesTableName
  SLUICE_FILES_CONTAINER: filesContainerName
  SLUICE_BATCH_SWEEP_SCHEDULE: batchSweepSchedule
  SLUICE_BREAKER_TABLE: breakerTableName
  SLUICE_BUDGET_TABLE: budgetTableName
  SLUICE_USAGE_TABLE: usageTableName
  SLUICE_ROLLUP_TABLE: rollupTableName
  SLUICE_ROLLUP_SCHEDULE: rollupSchedule
  SLUICE_CACHE_TABLE: cacheTableName
  // Overall monthly budget for Sluice's own alerts (loadTelemetrySettings: a number ≥ 0, USD); the same amount as
  // the resource-group Consumption budget.
  SLUICE_BUDGET_MONTHLY_USD: string(budgetMonthlyUsd)
  // Teams and keys. An Entra ID mapping only together with App Service Authentication (see entraAuth).
  SLUICE_TEAMS_TABLE: teamsTableName
  SLUICE_QUEUE_LANES: string(fleetQueueLanes)
  SLUICE_ENTRA_TEAMS: (entraAuth || empty(entraTeams)) ? entraTeams : fail('entraTeams needs entraClientId: Entra ID principals are trusted only behind App Service Authentication (docs/teams.md).')
  SLUICE_ENTRA_ADMINS: (entraAuth || empty(entraAdmins)) ? entraAdmins : fail('entraAdmins needs entraClientId: Entra ID principals are trusted only behind App Service Authentication (docs/teams.md).')
  // The synchronous API's quota wait, ms (docs/sync.md): the default, and the cap a request may ask for. Both stay well
  // under the 230 s the Flex Consumption front end allows one HTTP request.
  SLUICE_SYNC_MAX_WAIT_MS: '30000'
  SLUICE_SYNC_MAX_WAIT_CAP_MS: '120000'
  // Retention: the sweep's periods, schedule, bound and cursor table (the lifecycle policy gets the same periods).
  SLUICE_RETENTION_JOBS_DAYS: string(retentionJobsDays)
  SLUICE_RETENTION_USAGE_DAYS: string(retentionUsageDays)
  SLUICE_RETENTION_FILES_DAYS: string(retentionFilesDays)
  SLUICE_RETENTION_SWEEP_SCHEDULE: retentionSweepSchedule
  SLUICE_RETENTION_SWEEP_MAX_ROWS: string(retentionSweepMaxRows)
  SLUICE_RETENTION_TABLE: retentionTableName
  // Team queues and the dispatcher (docs/design/dispatch.md): jobs wait per team and are released into the jobs
  // queue at the quotas' pace, so the queue Flex scales the workers on holds only work the quota can start soon.
  SLUICE_DISPATCH: 'true'
  SLUICE_TEAM_QUEUE_TABLE: teamQueueTableName
  SLUICE_DISPATCH_SCHEDULE: '*/5 * * * * *'
  SLUICE_DISPATCH_DEPTH_SECONDS: string(fleetDispatchDepthSeconds)
}

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    publicNetworkAccess: enablePrivateNetworking ? 'Disabled' : 'Enabled'
    queues: [jobsQueueName, jobsPoisonQueueName, submitQueueName, submitPoisonQueueName, submitDeadLetterQueueName, batchQueueName, batchPoisonQueueName]
    tables: [jobsTableName, batchesTableName, breakerTableName, budgetTableName, usageTableName, rollupTableName, teamsTableName, backlogTableName, retentionTableName, cacheTableName, teamQueueTableName]
    containers: [payloadContainerName, filesContainerName, deploymentContainerName]
    // A day past the jobs period: the sweep deletes payloads with their job row first; this is the backstop.
    payloadContainer: payloadContainerName
    payloadRetentionDays: retentionJobsDays + 1
    // The longest a file can be kept: the default period or the longest expires_after (30 days, as OpenAI).
    filesContainer: filesContainerName
    filesRetentionDays: max(retentionFilesDays, 30)
  }
}

// Deployments inside one account are created one at a time (openai.bicep, @batchSize(1)); accounts in
// different regions in parallel.
module openAi 'app/openai.bicep' = [for (region, i) in openAiRegions: {
  name: 'openai-${i}-${region.location}'
  scope: rg
  params: {
    name: openAiAccountNames[i]
    location: region.location
    tags: tags
    deployments: region.deployments
    publicNetworkAccess: enablePrivateNetworking ? 'Disabled' : 'Enabled'
  }
}]

module network 'app/network.bicep' = if (enablePrivateNetworking) {
  name: 'network'
  scope: rg
  params: {
    vnetName: '${abbrs.networkVirtualNetworks}${resourceToken}'
    location: location
    tags: tags
    storageAccountName: storage.outputs.name
    openAiAccountNames: openAiAccountNames
  }
  dependsOn: [openAi]
}

module api 'app/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    planName: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    maximumInstanceCount: fleetMaximumInstanceCount
    queueBatchSize: fleetBatchSize
    queueNewBatchThreshold: fleetNewBatchThreshold
    instanceMemoryMB: instanceMemoryMB
    appSettings: sluiceSettings
    virtualNetworkSubnetId: enablePrivateNetworking ? network!.outputs.appSubnetId : ''
    entraClientId: entraClientId
  }
  // The host starts as soon as the app exists: let it find its roles and (private) endpoints in place.
  dependsOn: [rbac, openAi]
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    appPrincipalId: identity.outputs.principalId
    userPrincipalId: grantDeployerDataAccess ? principalId : ''
    userPrincipalType: principalType
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    openAiAccountNames: openAiAccountNames
  }
  dependsOn: [openAi]
}

module alerts 'app/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    namePrefix: resourceToken
    location: location
    tags: tags
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    alertEmail: alertEmail
    thresholds: alertThresholds
  }
}

module budget 'app/budget.bicep' = {
  name: 'budget'
  scope: rg
  params: {
    name: 'sluice-${resourceToken}'
    amountUsd: budgetMonthlyUsd
    startDate: effectiveBudgetStartDate
    contactEmails: [alertEmail]
  }
}

module dashboard 'app/dashboard.bicep' = {
  name: 'dashboard'
  scope: rg
  params: {
    namePrefix: resourceToken
    location: location
    tags: tags
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    budgetMonthlyUsd: budgetMonthlyUsd
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output SERVICE_API_NAME string = api.outputs.name
output SLUICE_API_URL string = '${api.outputs.url}/api'
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_STORAGE_BLOB_ENDPOINT string = storage.outputs.blobEndpoint
output AZURE_STORAGE_QUEUE_ENDPOINT string = storage.outputs.queueEndpoint
output AZURE_STORAGE_TABLE_ENDPOINT string = storage.outputs.tableEndpoint
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output APPLICATIONINSIGHTS_CONNECTION_STRING string = monitoring.outputs.connectionString
output AZURE_OPENAI_ACCOUNT_NAMES array = openAiAccountNames
output SLUICE_ENDPOINTS string = string(sluiceEndpoints)
output SLUICE_JOBS_QUEUE string = jobsQueueName
output SLUICE_JOBS_TABLE string = jobsTableName
output SLUICE_PAYLOAD_CONTAINER string = payloadContainerName
output SLUICE_BUDGET_START_DATE string = effectiveBudgetStartDate
output FLEET_MAXIMUM_INSTANCE_COUNT int = fleetMaximumInstanceCount
output FLEET_QUEUE_BATCH_SIZE int = fleetBatchSize
output FLEET_QUEUE_LANES int = fleetQueueLanes
output SLUICE_DASHBOARD_URL string = dashboard.outputs.dashboardUrl
output SLUICE_WORKBOOK_ID string = dashboard.outputs.workbookId
