"""Azure Functions entry point: declares the route and converts between the host's request and
response types and the product's. All behaviour lives in ``shared/`` (see shared/publish.py)."""

from urllib.parse import urlsplit

import azure.functions as func

from shared.publish import PublishRequest
from shared.runtime import drop_expired_records, handle

# Anonymous at the host: every request is authenticated in code with a bearer JWT
# (shared/tokens.py), which function keys would only duplicate.
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

# Every method is routed here so that the others get a 405 with "Allow: POST" instead of the
# host's bare 404.
ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@app.route(route="events", methods=ALL_METHODS)
async def publish_event(req: func.HttpRequest) -> func.HttpResponse:
    request = PublishRequest(
        method=req.method,
        path=urlsplit(req.url).path or "/events",
        headers={name.lower(): value for name, value in req.headers.items()},
        body=req.get_body(),
    )
    response = await handle(request)
    return func.HttpResponse(
        response.body,
        status_code=response.status,
        headers=dict(response.headers),
        mimetype=response.headers.get("Content-Type"),
    )


# Idempotent publish keeps the records of published events in one table per window-long
# generation (shared/records.py); once an hour, the tables that hold nothing that counts any more
# are dropped whole. Missing a run costs nothing but storage: the next run drops them.
@app.timer_trigger(schedule="0 17 * * * *", arg_name="timer", run_on_startup=False)
async def drop_expired_records_tables(timer: func.TimerRequest) -> None:
    await drop_expired_records()
