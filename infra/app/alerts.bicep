// Email action group and log alerts on the telemetry Sluice writes to Application Insights. Event and metric names
// are the app's (src/core/telemetry/names.ts; test/infra/telemetry.test.ts keeps them in step). Upstream 429s and
// latency come from the Azure OpenAI calls Application Insights records as dependencies.
param namePrefix string
param location string
param tags object = {}
param applicationInsightsId string
param alertEmail string
@description('{throttledSharePercent, failedJobs, p95LatencyMs, queueAgeSeconds, queueDepth, failovers}')
param thresholds object

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-sluice-${namePrefix}'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'sluice'
    enabled: true
    emailReceivers: [
      {
        name: 'operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

// Each query returns one row; the rule fires when `column` (aggregated with `aggregation`) exceeds `threshold`.
var rules = [
  {
    key: 'throttled-share'
    title: 'Share of Azure OpenAI calls answered 429'
    description: 'Sluice routes around 429s, but a high share means the deployments have too little quota for the load.'
    severity: 3
    window: 'PT15M'
    aggregation: 'Maximum'
    column: 'throttled_pct'
    threshold: thresholds.throttledSharePercent
    query: '''
dependencies
| where target has ".openai.azure.com"
| summarize calls = count(), throttled = countif(resultCode == "429")
| extend throttled_pct = iff(calls == 0, 0.0, 100.0 * throttled / calls)
| project throttled_pct
'''
  }
  {
    key: 'failed-jobs'
    title: 'Jobs failed'
    description: 'Jobs ended failed (non-retryable upstream error, retries exhausted, or poisoned).'
    severity: 2
    window: 'PT15M'
    aggregation: 'Total'
    column: 'failed'
    threshold: thresholds.failedJobs
    query: '''
customEvents
| where name == "sluice.job_failed"
| summarize failed = count()
'''
  }
  {
    key: 'latency-p95'
    title: 'p95 Azure OpenAI call latency (ms)'
    description: 'Slow upstream calls: regional trouble or very long completions.'
    severity: 3
    window: 'PT15M'
    aggregation: 'Maximum'
    column: 'p95_ms'
    threshold: thresholds.p95LatencyMs
    query: '''
dependencies
| where target has ".openai.azure.com"
| summarize p95_ms = percentile(duration, 95)
'''
  }
  {
    key: 'queue-age'
    title: 'Oldest job waiting in the queue (s)'
    description: 'Workers are not keeping up, or every deployment is out of quota.'
    severity: 2
    window: 'PT15M'
    aggregation: 'Maximum'
    column: 'age_s'
    threshold: thresholds.queueAgeSeconds
    query: '''
customMetrics
| where name == "sluice.queue_age_ms"
| summarize age_s = max(valueMax) / 1000.0
'''
  }
  {
    key: 'queue-depth'
    title: 'Jobs queue depth'
    description: 'Backlog of jobs waiting for quota or workers.'
    severity: 3
    window: 'PT15M'
    aggregation: 'Maximum'
    column: 'depth'
    threshold: thresholds.queueDepth
    query: '''
customMetrics
| where name == "sluice.queue_depth"
| summarize depth = max(valueMax)
'''
  }
  {
    key: 'failovers'
    title: 'Regional failovers'
    description: 'Calls moved to another region after 429s, 5xx or timeouts.'
    severity: 3
    window: 'PT15M'
    aggregation: 'Total'
    column: 'failovers'
    threshold: thresholds.failovers
    query: '''
customEvents
| where name == "sluice.failover"
| summarize failovers = count()
'''
  }
  {
    key: 'budget-threshold'
    title: 'Sluice budget threshold crossed'
    description: 'Sluice\'s own spend tracking crossed a monthly budget threshold (global or a team\'s).'
    severity: 1
    window: 'PT15M'
    aggregation: 'Total'
    column: 'crossings'
    threshold: 0
    query: '''
customEvents
| where name == "sluice.budget_threshold"
| summarize crossings = count()
'''
  }
]

resource alertRules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for r in rules: {
  name: 'sqr-sluice-${namePrefix}-${r.key}'
  location: location
  tags: tags
  properties: {
    displayName: 'Sluice: ${r.title}'
    description: r.description
    severity: r.severity
    enabled: true
    scopes: [applicationInsightsId]
    evaluationFrequency: 'PT5M'
    windowSize: r.window
    criteria: {
      allOf: [
        {
          query: r.query
          timeAggregation: r.aggregation
          metricMeasureColumn: r.column
          operator: 'GreaterThan'
          threshold: r.threshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [actionGroup.id]
    }
  }
}]

output actionGroupId string = actionGroup.id
