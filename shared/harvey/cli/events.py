"""`harvey events send`: post a CloudEvent the way a Knative broker delivers it."""

from __future__ import annotations

import json
import sys
import time
import uuid

import click

RETRYABLE = {404, 408, 409, 429}


@click.group("events")
def events() -> None:
    """CloudEvents for local development without a cluster."""


@events.command("send")
@click.argument("event_type")
@click.option("--data", "data_json", required=True, help="Event data as a JSON object.")
@click.option("--to", "url", required=True, help="Function or Broker URL, e.g. http://127.0.0.1:8083/.")
@click.option("--source", default="/harvey/cli", show_default=True, help="CloudEvent source.")
@click.option("--id", "event_id", help="CloudEvent id (default: a new UUID; reuse one to test dedupe).")
@click.option("--attempts", type=click.IntRange(1, 20), default=5, show_default=True, help="Deliveries at most.")
@click.option(
    "--backoff",
    type=click.FloatRange(0, 60),
    default=0.5,
    show_default=True,
    help="First retry delay in seconds, doubled each time.",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, allow_dash=True),
    envvar="HARVEY_EVENTS_TOKEN_FILE",
    show_envvar=True,
    help="File with an OIDC token to send as 'Authorization: Bearer', for a Broker or function that "
    "authenticates senders; '-' reads it from stdin.",
)
def send(
    event_type: str,
    data_json: str,
    url: str,
    source: str,
    event_id: str | None,
    attempts: int,
    backoff: float,
    token_file: str | None,
) -> None:
    """Send EVENT_TYPE in binary mode; retry on 5xx, 404, 408, 409 and 429 like a broker, stop on other
    4xx. Prints every attempt and the final status; exits non-zero unless the answer was 2xx.

    With Knative's authentication-oidc on, the Broker and the functions answer 401 to events without
    an OIDC token (--token-file). A token for the Broker, from a ServiceAccount in its namespace:

    \b
      kubectl -n NS create token SA --duration 10m \\
        --audience eventing.knative.dev/broker/NS/harvey \\
      | harvey events send TYPE --data JSON --token-file - \\
        --to http://broker-ingress.knative-eventing.svc.cluster.local/NS/harvey
    """
    from harvey.events import binary, parse_token
    from harvey.events import send as post

    try:
        data = json.loads(data_json)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--data") from exc
    token = None
    if token_file is not None:
        try:
            with click.open_file(token_file, "rb") as stream:
                origin = "stdin" if token_file == "-" else token_file  # noqa: S105 - a file name
                token = parse_token(stream.read(), origin)
        except (OSError, ValueError) as exc:
            raise click.BadParameter(str(exc), param_hint="--token-file") from exc
    headers, body = binary(event_type, data, source=source, event_id=event_id or str(uuid.uuid4()))
    status = 0
    for attempt in range(1, attempts + 1):
        try:
            status = post(headers, body, url, timeout=300, token=token)
            detail = str(status)
        except OSError as exc:  # connection refused, timeout: a broker retries those too
            status, detail = 0, f"error: {exc}"
        click.echo(f"attempt {attempt}: {detail}", err=True)
        if 200 <= status < 300 or (status and status < 500 and status not in RETRYABLE):
            break
        if attempt < attempts:
            time.sleep(backoff * 2 ** (attempt - 1))
    click.echo(json.dumps({"id": headers["ce-id"], "source": source, "type": event_type, "status": status}))
    sys.exit(0 if 200 <= status < 300 else 1)
