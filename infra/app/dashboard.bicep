// The Azure Portal view of Sluice: a workbook (infra/app/workbook.json, the full interactive view) and a shared
// dashboard pinning its key charts. The dashboard's queries ARE the workbook's (looked up by item name), so the two
// cannot disagree; only the time grain and the budget are filled in here.
param namePrefix string
param location string
param tags object = {}
param applicationInsightsId string
param budgetMonthlyUsd int

var workbookText = loadTextContent('workbook.json')
var workbook = loadJsonContent('workbook.json')
var budgetText = string(budgetMonthlyUsd)
var kql = toObject(
  filter(workbook.items, item => item.type == 3),
  item => item.name,
  item => replace(replace(item.content.query, '{TimeRange:grain}', '1h'), '{BudgetUsd}', budgetText)
)

resource sluiceWorkbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, namePrefix, 'sluice-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Sluice'
    category: 'workbook'
    sourceId: applicationInsightsId
    serializedData: replace(replace(workbookText, '__BUDGET_MONTHLY_USD__', budgetText), '__APPINSIGHTS_ID__', applicationInsightsId)
  }
}

func axis(name string, type string) object => { name: name, type: type }

// A Logs (KQL) tile over Application Insights. `dims` is the chart mapping ({} for a grid).
func logTile(x int, y int, colSpan int, rowSpan int, title string, query string, chart string, dims object, scopeId string, ownTimeRange bool) object => {
  position: { x: x, y: y, colSpan: colSpan, rowSpan: rowSpan }
  metadata: {
    type: 'Extension/Microsoft_OperationsManagementSuite_Workspace/PartType/LogsDashboardPart'
    inputs: [
      { name: 'resourceTypeMode', isOptional: true, value: 'components' }
      { name: 'ComponentId', isOptional: true, value: scopeId }
      { name: 'Scope', isOptional: true, value: { resourceIds: [scopeId] } }
      { name: 'PartId', isOptional: true, value: guid(scopeId, title) }
      { name: 'Version', isOptional: true, value: '2.0' }
      { name: 'TimeRange', isOptional: true, value: ownTimeRange ? 'P31D' : 'P1D' }
      { name: 'DashboardId', isOptional: true }
      { name: 'DraftRequestParameters', isOptional: true }
      { name: 'Query', isOptional: true, value: query }
      { name: 'ControlType', isOptional: true, value: empty(chart) ? 'AnalyticsGrid' : 'FrameControlChart' }
      { name: 'SpecificChart', isOptional: true, value: chart }
      { name: 'PartTitle', isOptional: true, value: title }
      { name: 'PartSubTitle', isOptional: true, value: 'Sluice' }
      { name: 'Dimensions', isOptional: true, value: dims }
      { name: 'LegendOptions', isOptional: true, value: { isEnabled: true, position: 'Bottom' } }
      { name: 'IsQueryContainTimeRange', isOptional: true, value: ownTimeRange }
    ]
    settings: {}
  }
}

func timeChart(y string, splitBy string, aggregation string) object => {
  xAxis: axis('timestamp', 'datetime')
  yAxis: [axis(y, 'real')]
  splitBy: empty(splitBy) ? [] : [axis(splitBy, 'string')]
  aggregation: aggregation
}

var ai = applicationInsightsId
var parts = [
  {
    position: { x: 0, y: 0, colSpan: 12, rowSpan: 2 }
    metadata: {
      type: 'Extension/HubsExtension/PartType/MarkdownPart'
      inputs: []
      settings: {
        content: {
          settings: {
            title: 'Sluice'
            subtitle: 'Shared Azure OpenAI quota'
            content: 'Throughput, tokens and cost by team and kind (job, batch, sync), latency and time to first token, 429s and failovers, quota use, queue and budget. Open the **Sluice** workbook (Application Insights → Workbooks) for filters and detail. Monthly budget: ${budgetText} USD.'
          }
        }
      }
    }
  }
  logTile(0, 2, 6, 4, 'Requests finished (kind, outcome)', kql.throughput, 'StackedColumn', timeChart('jobs', 'outcome', 'Sum'), ai, false)
  logTile(6, 2, 6, 4, 'Tokens by team', kql.tokensByTeam, 'StackedArea', timeChart('tokens', 'team', 'Sum'), ai, false)
  logTile(0, 6, 6, 4, 'Cost by team (USD)', kql.costByTeam, 'StackedColumn', timeChart('cost_usd', 'team', 'Sum'), ai, false)
  logTile(6, 6, 6, 4, 'Tokens and cost by team, model, region', kql.costByTeamModelRegion, '', {}, ai, false)
  logTile(0, 10, 6, 4, 'Azure OpenAI latency p50/p95/p99 (ms)', kql.latency, 'Line', {
    xAxis: axis('timestamp', 'datetime')
    yAxis: [axis('p50', 'real'), axis('p95', 'real'), axis('p99', 'real')]
    splitBy: []
    aggregation: 'Max'
  }, ai, false)
  logTile(6, 10, 6, 4, '429s and failovers', kql.throttlingAndFailover, 'StackedColumn', timeChart('n', 'series', 'Sum'), ai, false)
  logTile(0, 14, 6, 4, 'Quota use per deployment (% of TPM)', kql.quotaUtilization, 'Line', timeChart('utilization_pct', 'deployment', 'Max'), ai, false)
  logTile(6, 14, 6, 4, 'Queues: depth and jobs waiting', kql.queue, 'Line', timeChart('value', 'series', 'Max'), ai, false)
  logTile(0, 18, 12, 4, 'Month-to-date cost vs budget, projected (USD)', kql.costVsBudget, 'Line', {
    xAxis: axis('day', 'datetime')
    yAxis: [axis('mtd_usd', 'real'), axis('projected_usd', 'real'), axis('budget_usd', 'real')]
    splitBy: []
    aggregation: 'Max'
  }, ai, true)
  logTile(0, 22, 6, 4, 'Time to first token p95 by kind (ms)', kql.ttftByKind, 'Line', timeChart('p95', 'request_kind', 'Max'), ai, false)
  logTile(6, 22, 6, 4, 'Cost by kind (USD)', kql.costByKind, 'StackedColumn', timeChart('cost_usd', 'request_kind', 'Sum'), ai, false)
]

resource dashboard 'Microsoft.Portal/dashboards@2020-09-01-preview' = {
  name: 'dash-sluice-${namePrefix}'
  location: location
  tags: union(tags, { 'hidden-title': 'Sluice' })
  properties: {
    lenses: [
      {
        order: 0
        parts: parts
      }
    ]
    metadata: {
      model: {
        timeRange: {
          value: { relative: { duration: 24, timeUnit: 1 } }
          type: 'MsPortalFx.Composition.Configuration.ValueTypes.TimeRange'
        }
      }
    }
  }
}

output dashboardUrl string = 'https://portal.azure.com/#@${tenant().tenantId}/dashboard/arm${dashboard.id}'
output workbookId string = sluiceWorkbook.id
