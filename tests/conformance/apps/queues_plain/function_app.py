"""Queue conformance fixture with messageEncoding "none": messages are plain text."""

import azure.functions as func

app = func.FunctionApp()


@app.queue_trigger(arg_name="msg", queue_name="%Q_PLAIN%", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="out", queue_name="%Q_PLAIN_OUT%", connection="AzureWebJobsStorage")
def plain(msg: func.QueueMessage, out: func.Out[str]) -> None:
    out.set("got:" + msg.get_body().decode("utf-8"))
