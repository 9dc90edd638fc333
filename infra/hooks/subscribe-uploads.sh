#!/bin/sh
# azd postdeploy hook: subscribe the uploads blob trigger to the storage account's BlobCreated
# events (infra/app/upload-events.bicep). It runs after the code is deployed because the
# webhook's key (the host's blobs_extension system key) exists only once the app has started.
# Needs the Azure CLI, logged in to the same tenant as azd (az login).
set -eu

: "${AZURE_RESOURCE_GROUP:?run through azd (azd up or azd deploy)}"
: "${AZURE_FUNCTION_APP_NAME:?}"
: "${UPLOADS_SYSTEM_TOPIC_NAME:?}"
: "${UPLOADS_CONTAINER:=uploads}"

echo "Waiting for the blobs_extension key of $AZURE_FUNCTION_APP_NAME (the host makes it on start)..."
tries=0
until [ -n "$(az functionapp keys list -g "$AZURE_RESOURCE_GROUP" -n "$AZURE_FUNCTION_APP_NAME" \
    --query systemKeys.blobs_extension -o tsv 2>/dev/null)" ]; do
  tries=$((tries + 1))
  if [ "$tries" -gt 30 ]; then
    echo "No blobs_extension key after 5 minutes: is the app running? See its logs, then run azd deploy again." >&2
    exit 1
  fi
  sleep 10
done

az deployment group create \
  --resource-group "$AZURE_RESOURCE_GROUP" \
  --name upload-events \
  --template-file "$(dirname "$0")/../app/upload-events.bicep" \
  --parameters functionAppName="$AZURE_FUNCTION_APP_NAME" \
               systemTopicName="$UPLOADS_SYSTEM_TOPIC_NAME" \
               uploadsContainer="$UPLOADS_CONTAINER" \
  --output none
echo "Event Grid delivers BlobCreated in '$UPLOADS_CONTAINER' to register_upload."
