"""CloudEvents out to the Knative sink (K_SINK, injected by a SinkBinding).

Binary HTTP mode; K_CE_OVERRIDES (may be an empty string) adds extensions. A failed
send is logged and counted but never fails the caller: the audit row in PostgreSQL
is the record of truth, events are notifications.
"""

from __future__ import annotations

import json
import logging
import urllib.request
import uuid
from typing import Any

from harvey import metrics
from harvey.config import get_settings

log = logging.getLogger("harvey.events")


def overrides() -> dict[str, Any]:
    raw = get_settings().k_ce_overrides
    if not raw:
        return {}
    try:
        return dict(json.loads(raw).get("extensions") or {})
    except (ValueError, AttributeError):
        log.warning("ignoring malformed K_CE_OVERRIDES")
        return {}


def build(event_type: str, data: dict[str, Any], *, subject: str | None = None, source: str | None = None):
    from cloudevents.http import CloudEvent

    attributes: dict[str, Any] = {
        "type": event_type,
        "source": source or get_settings().event_source,
        "id": str(uuid.uuid4()),
        "datacontenttype": "application/json",
    }
    if subject:
        attributes["subject"] = subject
    attributes.update(overrides())
    return CloudEvent(attributes, data)


def send(event, url: str, timeout: float = 5.0) -> int:
    """POST one event in binary mode; returns the HTTP status (raises on network errors)."""
    from cloudevents.conversion import to_binary

    headers, body = to_binary(event)
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - URL from config
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def emit(event_type: str, data: dict[str, Any], *, subject: str | None = None, run_id: str | None = None) -> bool:
    """Best-effort emit to K_SINK; False when there is no sink or the send failed."""
    sink = get_settings().k_sink
    if not sink:
        metrics.EVENTS_EMITTED.labels(type=event_type, outcome="no_sink").inc()
        return False
    try:
        status = send(build(event_type, data, subject=subject), sink)
        ok = 200 <= status < 300
    except Exception as exc:  # noqa: BLE001 - never fail the request for a notification
        log.error("event send failed", extra={"type": event_type, "run_id": run_id, "error": str(exc)})
        ok = False
    else:
        if not ok:
            log.error("event rejected by sink", extra={"type": event_type, "run_id": run_id, "status": status})
    metrics.EVENTS_EMITTED.labels(type=event_type, outcome="sent" if ok else "failed").inc()
    return ok
