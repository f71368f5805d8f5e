// Email action group and log alerts on the telemetry Sluice writes to Application Insights. Event and metric names
// are the app's (src/core/telemetry/names.ts; test/infra/telemetry.test.ts keeps them in step). Upstream 429s and
// latency come from the Azure OpenAI calls recorded as dependencies (name "POST /openai/deployments/<deployment>/...").
// Metrics land in customMetrics with the value in valueSum (one series per window or per rollup run).
param namePrefix string
param location string
param tags object = {}
param applicationInsightsId string
param alertEmail string
@description('{throttledSharePercent, failedJobs, p95LatencyMs, jobsWaiting, queueDepth, failovers}')
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
| where name startswith "POST /openai/deployments/"
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
customMetrics
| where name == "sluice.jobs.failed"
| summarize failed = sum(valueSum)
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
| where name startswith "POST /openai/deployments/"
| summarize p95_ms = percentile(duration, 95)
'''
  }
  // Sluice emits no queue-age metric: a growing wait shows as jobs waiting (sluice.jobs.waiting, sent when the host
  // supplies the count) next to the queue-depth alert below.
  {
    key: 'jobs-waiting'
    title: 'Jobs waiting'
    description: 'Workers are not keeping up, or every deployment is out of quota.'
    severity: 2
    window: 'PT15M'
    aggregation: 'Maximum'
    column: 'waiting'
    threshold: thresholds.jobsWaiting
    query: '''
customMetrics
| where name == "sluice.jobs.waiting"
| summarize waiting = max(valueSum)
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
| where name == "sluice.queue.depth" and not(tostring(customDimensions.queue) endswith "-poison")
| summarize depth = max(valueSum)
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
customMetrics
| where name == "sluice.failovers"
| summarize failovers = sum(valueSum)
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
| where name == "SluiceBudgetThreshold"
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
