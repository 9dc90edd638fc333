"""Blob conformance fixture. Container and table names come from app settings (%...%).

At import it wraps `BlobClient.download_blob` (sync and async) to print a
`conformance-probe: download <container>/<blob>` line, so the tests can see
which blobs the runner downloaded before invoking a function.
"""

import functools
import json

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob
from azure.storage.blob import BlobClient as SyncBlobClient
from azure.storage.blob.aio import BlobClient as AsyncBlobClient

app = func.FunctionApp()
CONN = "AzureWebJobsStorage"


def _probe(cls: type, is_async: bool) -> None:
    original = cls.download_blob

    def report(client: object) -> None:
        print(f"conformance-probe: download {client.container_name}/{client.blob_name}", flush=True)

    if is_async:

        @functools.wraps(original)
        async def wrapper(self, *args, **kwargs):
            report(self)
            return await original(self, *args, **kwargs)
    else:

        @functools.wraps(original)
        def wrapper(self, *args, **kwargs):
            report(self)
            return original(self, *args, **kwargs)

    cls.download_blob = wrapper


_probe(AsyncBlobClient, is_async=True)
_probe(SyncBlobClient, is_async=False)


@app.blob_trigger(arg_name="stream", path="%BLOB_CONTAINER%/stream/{name}", connection=CONN)
@app.table_output(
    arg_name="row",
    connection=CONN,
    table_name="%BLOB_TABLE%",
    partition_key="{name}",
    row_key="{rand-guid}",
)
def on_stream(stream: func.InputStream, row: func.Out[str]) -> None:
    row.set(
        json.dumps(
            {
                "Kind": "stream",
                "Name": stream.name,
                "Length": stream.length,
                "Content": stream.read().decode("utf-8"),
            }
        )
    )


@app.blob_trigger(arg_name="client", path="%BLOB_CONTAINER%/sdk/{name}", connection=CONN)
@app.table_output(
    arg_name="row",
    connection=CONN,
    table_name="%BLOB_TABLE%",
    partition_key="{name}",
    row_key="{rand-guid}",
)
def on_sdk(client: blob.BlobClient, row: func.Out[str]) -> None:
    props = client.get_blob_properties()
    row.set(
        json.dumps(
            {
                "Kind": "sdk",
                "Type": type(client).__name__,
                "Module": type(client).__module__,
                "Size": str(props.size),
            }
        )
    )


@app.blob_trigger(arg_name="stream", path="%BLOB_CONTAINER%/fail/{name}", connection=CONN)
def on_fail(stream: func.InputStream) -> None:
    raise RuntimeError(f"conformance: failing on purpose for {stream.name}")
