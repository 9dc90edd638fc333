// The VM image catalog on Azure, for `azd up`: a Python 3.11 function app on Flex Consumption,
// its storage account (identity-only), a user-assigned identity with data roles, Application
// Insights on Log Analytics, and the Event Grid system topic that feeds the uploads blob trigger.
// The topic's subscription is made after the code is deployed (infra/app/upload-events.bicep,
// run by the postdeploy hook in azure.yaml): its webhook key exists only once the app runs.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; it seeds the names of every resource.')
param environmentName string

@minLength(1)
@description('Azure region of every resource (one where Flex Consumption is offered).')
@metadata({ azd: { type: 'location' } })
param location string

@description('Object id of the person running azd: gets blob and queue data roles to upload VHDs and send captures. Empty for none.')
param principalId string = ''

@allowed(['User', 'ServicePrincipal', 'Group'])
param principalType string = 'User'

@description('Subscription id that classic clients put in their URLs (/{subscription-id}/services/...).')
param classicSubscriptionId string = subscription().subscriptionId

@secure()
@description('Key of the HMAC that signs continuation tokens. Generated on each provision unless given; a new one only invalidates tokens in flight.')
param pagingTokenSecret string = '${uniqueString(subscription().id, environmentName)}${newGuid()}'

@allowed([512, 2048, 4096])
@description('Memory of each Flex Consumption instance (MB). Uploads and captures read ranges and copy server-side, so 2048 is plenty.')
param instanceMemoryMB int = 2048

@minValue(1)
@maxValue(1000)
@description('Most instances Flex Consumption may scale out to.')
param maximumInstanceCount int = 100

@description('Seconds a page blob must stay unchanged before it is judged (README: When is an upload judged?).')
param uploadSettleSeconds string = '15'

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var functionAppName = 'func-${resourceToken}'
// Where browsers load the portal from: the app's default host name.
var portalOrigin = 'https://${functionAppName}.azurewebsites.net'
// Flex Consumption runs the app from a package in this container.
var deploymentContainerName = 'app-package'

// The catalog's storage names: each is an app setting the code reads (shared/settings.py DEFAULTS)
// and a container, queue or table created below. tests/unit/test_infra.py checks both.
var catalog = {
  UPLOADS_CONTAINER: 'uploads'
  IMAGES_CONTAINER: 'images'
  VHDS_CONTAINER: 'vhds'
  HASHES_CONTAINER: 'image-hashes'
  LISTS_CONTAINER: 'catalog-lists'
  CAPTURE_QUEUE: 'image-captures'
  UPLOAD_CHECKS_QUEUE: 'upload-checks'
  HASH_QUEUE: 'image-hashes'
  UPLOAD_CONVERSIONS_QUEUE: 'upload-conversions'
  IMAGES_TABLE: 'images'
  UPLOADS_TABLE: 'uploads'
  OPERATIONS_TABLE: 'operations'
  VMS_TABLE: 'vms'
  CERTIFICATES_TABLE: 'certificates'
}
var containerNames = [
  catalog.UPLOADS_CONTAINER
  catalog.IMAGES_CONTAINER
  catalog.VHDS_CONTAINER
  catalog.HASHES_CONTAINER
  catalog.LISTS_CONTAINER
  deploymentContainerName
]
var queueNames = [
  catalog.CAPTURE_QUEUE
  '${catalog.CAPTURE_QUEUE}-poison'
  catalog.UPLOAD_CHECKS_QUEUE
  catalog.HASH_QUEUE
  catalog.UPLOAD_CONVERSIONS_QUEUE
]
var tableNames = [
  catalog.IMAGES_TABLE
  catalog.UPLOADS_TABLE
  catalog.OPERATIONS_TABLE
  catalog.VMS_TABLE
  catalog.CERTIFICATES_TABLE
]
var blobContainers = [for name in containerNames: { name: name }]
var queues = [for name in queueNames: { name: name }]
var tables = [for name in tableNames: { name: name }]

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'br/public:avm/res/managed-identity/user-assigned-identity:0.4.1' = {
  scope: rg
  name: 'identity'
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'br/public:avm/res/storage/storage-account:0.8.3' = {
  scope: rg
  name: 'storage'
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    kind: 'StorageV2'
    skuName: 'Standard_LRS'
    // Entra ID only: the app, the host and people all authenticate with identities.
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    blobServices: {
      containers: blobContainers
      // The portal (served by the app at /) uploads disks from the browser straight to
      // the uploads container, with a SAS for one blob: Put Blob, Put Page, metadata.
      corsRules: [
        {
          allowedOrigins: [portalOrigin]
          allowedMethods: ['PUT', 'GET', 'HEAD', 'OPTIONS']
          allowedHeaders: ['*']
          exposedHeaders: ['*']
          maxAgeInSeconds: 3600
        }
      ]
    }
    queueServices: {
      queues: queues
    }
    tableServices: {
      tables: tables
    }
  }
}

module logAnalytics 'br/public:avm/res/operational-insights/workspace:0.11.1' = {
  scope: rg
  name: 'logAnalytics'
  params: {
    name: 'log-${resourceToken}'
    location: location
    tags: tags
    dataRetention: 30
  }
}

module appInsights 'br/public:avm/res/insights/component:0.6.0' = {
  scope: rg
  name: 'appInsights'
  params: {
    name: 'appi-${resourceToken}'
    location: location
    tags: tags
    workspaceResourceId: logAnalytics.outputs.resourceId
    // Ingestion with Entra ID only (APPLICATIONINSIGHTS_AUTHENTICATION_STRING below).
    disableLocalAuth: true
  }
}

module plan 'br/public:avm/res/web/serverfarm:0.1.1' = {
  scope: rg
  name: 'plan'
  params: {
    name: 'plan-${resourceToken}'
    location: location
    tags: tags
    sku: {
      name: 'FC1'
      tier: 'FlexConsumption'
    }
    reserved: true
  }
}

module rbac 'app/rbac.bicep' = {
  scope: rg
  name: 'rbac'
  params: {
    storageAccountName: storage.outputs.name
    appInsightsName: appInsights.outputs.name
    appPrincipalId: identity.outputs.principalId
    userPrincipalId: principalId
    userPrincipalType: principalType
  }
}

// Every app setting the code reads; nothing secret but the paging key (no storage keys exist).
var appSettings = union(catalog, {
  AzureWebJobsStorage__accountName: storage.outputs.name
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.outputs.clientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.outputs.connectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.outputs.clientId};Authorization=AAD'
  UPLOAD_SETTLE_SECONDS: uploadSettleSeconds
  UPLOAD_TIMEOUT_SECONDS: '3600'
  MAX_OS_DISK_GB: '2048'
  MAX_DATA_DISK_GB: '32767'
  // A conversion job's step: at most this many MiB read or seconds, then the next message.
  CONVERSION_STEP_MIB: '8192'
  CONVERSION_STEP_SECONDS: '60'
  // Keep equal to host.json extensions.queues.maxDequeueCount.
  CAPTURE_MAX_ATTEMPTS: '5'
  PAGING_TOKEN_SECRET: pagingTokenSecret
  CLASSIC_SUBSCRIPTION_ID: classicSubscriptionId
  // The portal answers at / (functions/portal.py), in place of the host's own home page.
  AzureWebJobsDisableHomepage: 'true'
})

module functionApp 'br/public:avm/res/web/site:0.15.1' = {
  scope: rg
  name: 'functionApp'
  params: {
    name: functionAppName
    location: location
    tags: union(tags, { 'azd-service-name': 'api' })
    kind: 'functionapp,linux'
    serverFarmResourceId: plan.outputs.resourceId
    managedIdentities: {
      userAssignedResourceIds: [identity.outputs.resourceId]
    }
    httpsOnly: true
    // The front end asks for a client certificate, optionally, and hands it to the app in
    // X-ARR-ClientCert: classic clients present management certificates, JSON clients none.
    clientCertEnabled: true
    clientCertMode: 'Optional'
    siteConfig: {
      alwaysOn: false
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.outputs.primaryBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.outputs.resourceId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
    appSettingsKeyValuePairs: appSettings
  }
  // The host reads its storage with the identity from its first start.
  dependsOn: [rbac]
}

// Storage events for the uploads blob trigger (source="EventGrid"; the only kind Flex Consumption runs).
module uploadsTopic 'br/public:avm/res/event-grid/system-topic:0.6.1' = {
  scope: rg
  name: 'uploadsTopic'
  params: {
    name: 'evgt-${resourceToken}'
    location: location
    tags: tags
    source: storage.outputs.resourceId
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_URL string = 'https://${functionApp.outputs.defaultHostname}'
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output APPLICATIONINSIGHTS_NAME string = appInsights.outputs.name
output UPLOADS_CONTAINER string = catalog.UPLOADS_CONTAINER
output UPLOADS_SYSTEM_TOPIC_NAME string = uploadsTopic.outputs.name
