"""Azure Functions entry point: declares the routes and converts between the host's request and
response types and the product's. All behaviour lives in ``shared/`` (docs/architecture.md)."""

import logging
from urllib.parse import urlencode, urlsplit

import azure.functions as func

from shared.app.runtime import drop_expired_records, handle
from shared.core.pipeline import PublishRequest

# The Azure SDK logs every HTTP request and response at INFO: with the worker exporting logs to
# Application Insights, that is three log records per publish. Its warnings still go out; the
# calls themselves are dependencies (spans) already.
logging.getLogger("azure").setLevel(logging.WARNING)

# Anonymous at the host: every request is authenticated in code with a bearer JWT
# (shared/adapters/tokens.py), which function keys would only duplicate.
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

# Every method is routed here so that the others get a 405 with "Allow: POST" instead of the
# host's bare 404.
ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@app.route(route="events", methods=ALL_METHODS)
async def publish_event(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    # The host's invocation span continues the caller's traceparent (or starts the trace that
    # App Insights calls operation_Id): the publish span is its child.
    trace_context = context.trace_context
    url = urlsplit(req.url)
    request = PublishRequest(
        method=req.method,
        path=url.path or "/events",
        headers={name.lower(): value for name, value in req.headers.items()},
        body=req.get_body(),
        trace_parent=trace_context.trace_parent or None,
        trace_state=trace_context.trace_state or None,
        # the URL's own query string (a repeated or empty parameter stays visible); the host's
        # parsed params only if a host ever hands over a URL without it
        query=url.query or urlencode(dict(req.params)),
    )
    response = await handle(request)
    return func.HttpResponse(
        response.body,
        status_code=response.status,
        headers=dict(response.headers),
        mimetype=response.headers.get("Content-Type"),
    )


# Idempotent publish keeps the records of published events in one table per window-long
# generation (shared/core/idempotency.py); once an hour, the tables that hold nothing that counts
# any more are dropped whole. Missing a run costs nothing but storage: the next run drops them.
@app.timer_trigger(schedule="0 17 * * * *", arg_name="timer", run_on_startup=False)
async def drop_expired_records_tables(timer: func.TimerRequest) -> None:
    await drop_expired_records()
