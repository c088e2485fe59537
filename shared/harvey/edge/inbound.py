"""CloudEvents coming in (binary or structured HTTP mode): parsed, checked, acknowledged.

Knative brokers deliver at least once: a recipient sees duplicates and dedupes on `source` + `id`
(`store.ledger` for maintenance work, the run row for drafts, the feedback row for feedback).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask import Request, Response

from harvey.schemas import InvalidRequest
from harvey.store.ledger import EventKey

MAX_ATTRIBUTE = 1000


class InvalidEvent(InvalidRequest):
    """A request that claims to be a CloudEvent but can never be processed (answer 400, final)."""

    def __init__(self, message: str, field: str = "body"):
        super().__init__(field, message)


@dataclass(frozen=True)
class Inbound:
    type: str
    source: str
    id: str
    data: dict[str, Any]

    @property
    def key(self) -> EventKey:
        return EventKey(self.source, self.id, self.type)


def is_cloudevent(request: Request) -> bool:
    content_type = (request.headers.get("Content-Type") or "").lower()
    return "ce-specversion" in request.headers or content_type.startswith("application/cloudevents+json")


def parse(request: Request, max_bytes: int) -> Inbound:
    """The event with its data as a JSON object; InvalidEvent says what is wrong (never echoing it)."""
    from cloudevents.http import from_http

    from harvey.edge.http import read_body
    from harvey.schemas import UnsafeInput, check_json, check_text

    raw = read_body(request, max_bytes)
    if len(raw) > max_bytes:
        raise InvalidEvent(f"event exceeds the limit of {max_bytes} bytes")
    try:
        event = from_http(dict(request.headers), raw)
    except Exception:  # noqa: BLE001 - the SDK raises many kinds (bad JSON, bad UTF-8, recursion) on hostile input
        raise InvalidEvent("not a valid CloudEvent (binary or structured mode, JSON, UTF-8)") from None
    attributes = {}
    for name in ("type", "source", "id"):
        value = event.get(name)
        if not isinstance(value, str) or not 1 <= len(value) <= MAX_ATTRIBUTE:
            raise InvalidEvent(f"'{name}' must be a string of 1–{MAX_ATTRIBUTE} characters", name)
        try:
            attributes[name] = check_text(value, name)
        except UnsafeInput as exc:
            raise InvalidEvent(str(exc), name) from None
    data = event.get_data()
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data or "null")
        except (ValueError, RecursionError):
            raise InvalidEvent("event data is not valid JSON", "data") from None
    if not isinstance(data, dict):
        raise InvalidEvent("event data must be a JSON object", "data")
    try:
        check_json(data, "data")
    except UnsafeInput as exc:
        raise InvalidEvent(str(exc), exc.field) from None
    return Inbound(attributes["type"], attributes["source"], attributes["id"], data)


def ack(status: int = 200, **facts: str) -> Response:
    """A delivery's answer: an empty body, what happened in `X-Harvey-*` headers.

    A broker routes a reply body back as a new event and answers 502 (and redelivers) when
    the body is not a CloudEvent, so event deliveries never get a JSON body on success.
    """
    headers = {f"X-Harvey-{name.replace('_', '-').title()}": value for name, value in facts.items()}
    return Response(status=status, headers=headers)
