// Data-plane roles: the only way into the storage account, whose shared keys are disabled.
//
// The app's identity (the Functions host and the catalog code share it):
// - Storage Blob Data Owner: what the Functions host documents for an identity-based
//   AzureWebJobsStorage (its azure-webjobs-hosts locks and blob-trigger receipts, the
//   azure-webjobs-secrets keys, the Flex deployment package). The catalog's own blob work
//   (ranged reads, infinite leases, snapshots, server-side copies, deletes) would need only
//   Contributor; Owner adds ACL management, which does nothing without a hierarchical namespace.
// - Storage Queue Data Contributor: the capture and re-check queues and their -poison queues.
// - Storage Table Data Contributor: the catalog, uploads, operations and VM tables.
// - Monitoring Metrics Publisher on Application Insights: ingestion with Entra ID (local auth is off).
//
// The deploying user (optional): Blob Data Contributor to upload VHDs with --auth-mode login,
// Queue Data Contributor to send capture requests.

param storageAccountName string
param appInsightsName string
@description('Principal id of the app\'s user-assigned identity.')
param appPrincipalId string
@description('Object id of the deploying user; empty for none.')
param userPrincipalId string = ''
param userPrincipalType string = 'User'

var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}
var appStorageRoles = [
  roles.storageBlobDataOwner
  roles.storageQueueDataContributor
  roles.storageTableDataContributor
]
var userStorageRoles = [
  roles.storageBlobDataContributor
  roles.storageQueueDataContributor
]

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource appStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in appStorageRoles: {
    scope: storageAccount
    name: guid(storageAccount.id, appPrincipalId, role)
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
      principalId: appPrincipalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource appTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: appInsights
  name: guid(appInsights.id, appPrincipalId, roles.monitoringMetricsPublisher)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource userStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in (empty(userPrincipalId) ? [] : userStorageRoles): {
    scope: storageAccount
    name: guid(storageAccount.id, userPrincipalId, role)
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
      principalId: userPrincipalId
      principalType: userPrincipalType
    }
  }
]
