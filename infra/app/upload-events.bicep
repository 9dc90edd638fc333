// Event Grid -> the uploads blob trigger (register_upload, source="EventGrid").
//
// Deployed by infra/hooks/subscribe-uploads.sh after `azd deploy`, not by main.bicep: the
// webhook URL carries the host's `blobs_extension` system key, which exists only once the
// deployed code has started, and Event Grid validates the endpoint when the subscription is made.
// Page blobs raise BlobCreated once, when created at full size; the settle rule and the
// upload-checks queue take it from there (README: When is an upload judged?).

@description('The function app deployed by main.bicep (output AZURE_FUNCTION_APP_NAME).')
param functionAppName string

@description('The storage account\'s system topic (output UPLOADS_SYSTEM_TOPIC_NAME).')
param systemTopicName string

@description('The drop zone (app setting UPLOADS_CONTAINER, output of main.bicep).')
param uploadsContainer string = 'uploads'

@description('The blob-triggered function that registers uploads (functions/uploads.py).')
param functionName string = 'register_upload'

resource functionApp 'Microsoft.Web/sites@2023-12-01' existing = {
  name: functionAppName
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

var blobsExtensionKey = listKeys('${functionApp.id}/host/default', '2023-12-01').systemKeys.blobs_extension

resource uploadsCreated 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: systemTopic
  // Letters, digits and hyphens only.
  name: 'uploads-to-${replace(functionName, '_', '-')}'
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: 'https://${functionApp.properties.defaultHostName}/runtime/webhooks/blobs?functionName=Host.Functions.${functionName}&code=${blobsExtensionKey}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      subjectBeginsWith: '/blobServices/default/containers/${uploadsContainer}/'
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}
