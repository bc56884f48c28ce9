// Alert rules for the publish endpoint, and the optional action group that notifies someone. What
// each alert means and what to check first when it fires: docs/operations.md.
//
// - publish 5xx (log): a sustained share of 5xx answers (500 internal-error, 503 <dependency>-unavailable)
// - registry failures (log): Resource Registry lookups that failed (outcome error or stale)
// - no answers (log): the code answered nothing in 15 minutes although the availability test
//   POSTs every five minutes: the liveness check that does not need availability results
// - availability (metric): the standard availability test (availability.bicep) failed in several
//   locations
// - queue backlog (metric): QueueMessageCount of the events storage account over a threshold
//
// The log alerts query Application Insights' own tables (customMetrics) with the component as their
// scope; their queries are the .kql files in kql/, with {placeholders} filled from the parameters.
// Without alertEmail there is no action group: the alerts still fire and show in the portal
// (Monitor > Alerts), they just notify nobody.
param location string
param tags object = {}

@description('Prefix of the alert rules\' names (the function app\'s name).')
param namePrefix string

param applicationInsightsName string

@description('The storage account that holds the events queue.')
param storageAccountName string

@description('Name of the standard availability test (availability.bicep).')
param webTestName string

@description('E-mail address that alerts are sent to; empty: no action group, no notifications.')
param alertEmail string = ''

@description('Name of the action group, created only with alertEmail.')
param actionGroupName string

@minValue(1)
@maxValue(100)
@description('Publish 5xx: share of 5xx answers (percent) in a 5-minute bin that counts as bad.')
param fiveXxPercent int = 5

@minValue(1)
@description('Registry failures: failed lookups (outcome error or stale) in 15 minutes that fire the alert.')
param registryFailures int = 10

@minValue(1)
@description('Queue backlog: messages in the storage account\'s queues (hourly average) that fire the alert.')
param queueBacklog int = 1000

// Answers a 5-minute bin needs before its 5xx share counts: a single failed publish at night is not
// an outage.
var minimumAnswersPerBin = 10

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource webTest 'Microsoft.Insights/webtests@2022-06-15' existing = {
  name: webTestName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: actionGroupName
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'events-ops'
    enabled: true
    emailReceivers: [
      {
        name: 'operations'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

// Every alert notifies the action group when there is one, and nobody otherwise.
var actionGroupIds = empty(alertEmail) ? [] : [actionGroup.id]
var metricAlertActions = empty(alertEmail) ? [] : [
  {
    actionGroupId: actionGroup.id
  }
]

var fiveXxQueryText = loadTextContent('kql/publish-5xx.kql')
var fiveXxQuery = replace(replace(fiveXxQueryText, '{minimumAnswers}', string(minimumAnswersPerBin)), '{percent}', string(fiveXxPercent))
var registryFailuresQuery = replace(loadTextContent('kql/registry-failures.kql'), '{failures}', string(registryFailures))
var noAnswersQuery = loadTextContent('kql/no-answers.kql')

resource publishFiveXx 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-publish-5xx'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Events publish: sustained 5xx answers'
    description: 'At least ${fiveXxPercent} % of the answers to publishers were 5xx (internal-error or a 503 <dependency>-unavailable) in two of the last three 5-minute bins. docs/operations.md, "publish 5xx".'
    severity: 1
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: fiveXxQuery
          timeAggregation: 'Count'
          operator: 'GreaterThanOrEqual'
          threshold: 2
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroupIds
    }
  }
}

resource registryFailureAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-registry-failures'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Events publish: Resource Registry failures'
    description: 'At least ${registryFailures} registry lookups in 15 minutes got no answer (outcome error: 503 registry-unavailable; outcome stale: served from the last good rules). docs/operations.md, "registry failures".'
    severity: 2
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: registryFailuresQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroupIds
    }
  }
}

resource noAnswers 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-no-answers'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Events publish: no answers'
    description: 'The code answered no request in 15 minutes, although the availability test POSTs to /events every five minutes: the function is down or its telemetry does not arrive. docs/operations.md, "no answers".'
    severity: 1
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: noAnswersQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroupIds
    }
  }
}

// The availability test's own alert, as Azure Monitor creates it for a standard test: it fires when
// the test fails in three of its five locations (the documented rule: locations - 2).
resource availability 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${namePrefix}-availability'
  location: 'global'
  tags: union(tags, {
    'hidden-link:${applicationInsights.id}': 'Resource'
    'hidden-link:${webTest.id}': 'Resource'
  })
  properties: {
    description: 'POST /events without a token did not answer 401 from at least 3 of the availability test\'s locations. docs/operations.md, "availability".'
    severity: 1
    enabled: true
    scopes: [
      webTest.id
      applicationInsights.id
    ]
    evaluationFrequency: 'PT1M'
    windowSize: 'PT5M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.WebtestLocationAvailabilityCriteria'
      webTestId: webTest.id
      componentId: applicationInsights.id
      failedLocationCount: 3
    }
    autoMitigate: true
    actions: metricAlertActions
  }
}

// QueueMessageCount is a capacity metric of the queue service: one value an hour, for ALL queues of
// the account together (it has no queue dimension), averaged. The events queue is the only queue
// the app writes, but a consumer's poison queue in the same account counts too. Hence the hourly
// evaluation and a six-hour window: a backlog that builds for hours, not a burst, fires it.
resource queueBacklogAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${namePrefix}-queue-backlog'
  location: 'global'
  tags: tags
  properties: {
    description: 'More than ${queueBacklog} messages wait in the queues of ${storageAccountName} (hourly capacity metric, all queues of the account). docs/operations.md, "queue backlog".'
    severity: 2
    enabled: true
    scopes: [
      queueService.id
    ]
    evaluationFrequency: 'PT1H'
    windowSize: 'PT6H'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          name: 'backlog'
          criterionType: 'StaticThresholdCriterion'
          metricNamespace: 'Microsoft.Storage/storageAccounts/queueServices'
          metricName: 'QueueMessageCount'
          timeAggregation: 'Average'
          operator: 'GreaterThan'
          threshold: queueBacklog
        }
      ]
    }
    autoMitigate: true
    actions: metricAlertActions
  }
}
