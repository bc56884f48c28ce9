// A standard availability test: every five minutes, from five locations, POST /events with an empty
// JSON body and no token, and expect 401. That answer needs the host, the worker and the code's
// token check, but no token issuer, registry, records or queue, so the test says "the endpoint is
// up" without publishing anything and without a credential to keep.
//
// Application Insights here accepts only Entra-authenticated telemetry (DisableLocalAuth, in
// monitoring.bicep). Microsoft's page on Entra authentication for Application Insights listed
// availability tests as unsupported with it until 2023 and no longer does; whether this test's
// results reach the component is to be checked after deploying (docs/deploy.md, "Telemetry").
// Either way its requests reach the function, which counts them, so the "no answers" alert
// (alerts.bicep) watches the same probe without needing its results.
param name string
param location string
param tags object = {}

param applicationInsightsName string

@description('The URL the test POSTs to: the deployed https://<host>/events.')
param endpointUrl string

@allowed([
  300
  600
  900
])
@description('Seconds between runs from each location.')
param frequencySeconds int = 300

// Five locations, as Azure Monitor recommends (the alert fires at locations - 2 = 3 failing), all in
// Europe, near the publishers: West Europe, North Europe, UK West, UK South, France Central
// (population names from the availability tests documentation).
@minLength(5)
param locations array = [
  'emea-nl-ams-azr'
  'emea-gb-db3-azr'
  'emea-se-sto-edge'
  'emea-ru-msa-edge'
  'emea-fr-pra-edge'
]

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource webTest 'Microsoft.Insights/webtests@2022-06-15' = {
  name: name
  location: location
  kind: 'standard'
  // The hidden-link tag is what ties a test to its Application Insights component.
  tags: union(tags, {
    'hidden-link:${applicationInsights.id}': 'Resource'
  })
  properties: {
    SyntheticMonitorId: name
    Name: 'POST /events without a token answers 401'
    Description: 'The publish endpoint is reachable and its code runs: no token, so 401 missing-token. docs/operations.md, "availability".'
    Kind: 'standard'
    Enabled: true
    Frequency: frequencySeconds
    Timeout: 30
    RetryEnabled: true
    Locations: [for id in locations: {
      Id: id
    }]
    Request: {
      RequestUrl: endpointUrl
      HttpVerb: 'POST'
      Headers: [
        {
          key: 'Content-Type'
          value: 'application/json'
        }
      ]
      RequestBody: base64('{}')
      ParseDependentRequests: false
      FollowRedirects: false
    }
    ValidationRules: {
      ExpectedHttpStatusCode: 401
      SSLCheck: true
      SSLCertRemainingLifetimeCheck: 7
    }
  }
}

output name string = webTest.name
