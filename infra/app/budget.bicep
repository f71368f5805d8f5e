// Azure's own cost guard rail on the resource group: a monthly Consumption budget that emails at 50, 80 and 100 %
// of actual spend and at 100 % of forecast. Its amount is the same number Sluice enforces itself
// (SLUICE_BUDGET_MONTHLY_USD); this one also counts storage, monitoring and hosting, and cannot stop anything.
param name string
param amountUsd int
@description('yyyy-MM-01; Azure refuses to change it once the budget exists (main.bicep pins it).')
param startDate string
param contactEmails string[]

func notification(threshold int, thresholdType string, emails string[]) object => {
  enabled: true
  operator: 'GreaterThanOrEqualTo'
  threshold: threshold
  thresholdType: thresholdType
  contactEmails: emails
}

resource budget 'Microsoft.Consumption/budgets@2023-11-01' = {
  name: name
  properties: {
    category: 'Cost'
    amount: amountUsd
    timeGrain: 'Monthly'
    timePeriod: { startDate: startDate }
    notifications: {
      actual50: notification(50, 'Actual', contactEmails)
      actual80: notification(80, 'Actual', contactEmails)
      actual100: notification(100, 'Actual', contactEmails)
      forecast100: notification(100, 'Forecasted', contactEmails)
    }
  }
}

output name string = budget.name
