"""Queue conformance fixture. Queue and table names come from app settings (%...%)."""

import json
import time

import azure.functions as func

app = func.FunctionApp()
CONN = "AzureWebJobsStorage"


@app.queue_trigger(arg_name="msg", queue_name="%Q_RECORD%", connection=CONN)
@app.queue_output(arg_name="out", queue_name="%Q_RECORD_OUT%", connection=CONN)
@app.table_output(
    arg_name="row", connection=CONN, table_name="%Q_TABLE%", partition_key="record", row_key="{Id}"
)
def record(msg: func.QueueMessage, out: func.Out[str], row: func.Out[str]) -> None:
    seen = {
        "Id": msg.id,
        "Body": msg.get_body().decode("utf-8"),
        "DequeueCount": msg.dequeue_count,
        "InsertionTime": msg.insertion_time.isoformat() if msg.insertion_time else None,
        "ExpirationTime": msg.expiration_time.isoformat() if msg.expiration_time else None,
    }
    out.set(json.dumps(seen))
    row.set(json.dumps(seen))


@app.queue_trigger(arg_name="msg", queue_name="%Q_FAIL%", connection=CONN)
@app.queue_output(arg_name="out", queue_name="%Q_FAIL_OUT%", connection=CONN)
@app.table_output(
    arg_name="row", connection=CONN, table_name="%Q_TABLE%", partition_key="fail", row_key="{Id}"
)
def fail(msg: func.QueueMessage, out: func.Out[str], row: func.Out[str]) -> None:
    out.set("must never be written")
    row.set(json.dumps({"Body": "must never be written"}))
    raise RuntimeError(f"conformance: failing on purpose (try {msg.dequeue_count})")


@app.queue_trigger(arg_name="msg", queue_name="%Q_NEVER%", connection=CONN)
def never(msg: func.QueueMessage) -> None:
    print(f"conformance: never was invoked with {msg.get_body()!r}", flush=True)


@app.queue_trigger(arg_name="msg", queue_name="%Q_LEASE%", connection=CONN)
def outlives_lease(msg: func.QueueMessage) -> None:
    time.sleep(5)  # longer than FUNCRUNNER_QUEUE_LEASE_SECONDS


@app.queue_trigger(arg_name="msg", queue_name="%Q_SLOW%", connection=CONN)
def slow(msg: func.QueueMessage) -> None:
    time.sleep(0.8)


@app.queue_trigger(arg_name="msg", queue_name="%Q_RETURNS%", connection=CONN)
def returns_value(msg: func.QueueMessage):  # no $return binding
    return "a value nobody can take"


@app.queue_trigger(arg_name="msg", queue_name="%Q_TEXT%", connection=CONN)
@app.queue_output(arg_name="out", queue_name="%Q_TEXT_OUT%", connection=CONN)
def as_text(msg: str, out: func.Out[str]) -> None:
    out.set(f"{type(msg).__name__}:{msg}")


@app.queue_trigger(arg_name="msg", queue_name="%Q_STALL%", connection=CONN)
@app.table_output(
    arg_name="row", connection=CONN, table_name="%Q_TABLE%", partition_key="stall", row_key="{Id}"
)
def behind_bad(msg: func.QueueMessage, row: func.Out[str]) -> None:
    row.set(json.dumps({"Body": msg.get_body().decode("utf-8"), "DequeueCount": msg.dequeue_count}))
