"""The review page as a service: a signed link opens one run's page and lets it post feedback on that run.

The link's token (HARVEY_REVIEW_SECRET) is the page's only credential: it names the tenant and the run,
so the page needs no API key, and a token for one run can neither open nor post feedback on another.
The tenant's rate limit applies to what the page posts, as to any Bearer request.
"""

from __future__ import annotations

from typing import Any

from harvey.config import get_settings
from harvey.review import links
from harvey.schemas import InvalidRequest


class ReviewDisabled(Exception):
    """No HARVEY_REVIEW_SECRET: links cannot be minted or checked (503 until it is configured)."""


class RunNotReady(Exception):
    """The run is queued or running: there is no document to review yet."""


class RunMissing(LookupError):
    """The token is valid but the run is gone (purged by retention)."""


def _secret() -> bytes:
    secret = get_settings().review_secret
    if secret is None:
        raise ReviewDisabled("review links are not configured (HARVEY_REVIEW_SECRET)")
    return secret.get_secret_value().encode()


def link(tenant_id: str, run_id: str, ttl_s: int | None = None) -> str | None:
    """`{HARVEY_REVIEW_BASE_URL}/review/{run_id}?token=…`, or None without HARVEY_REVIEW_SECRET."""
    settings = get_settings()
    if settings.review_secret is None:
        return None
    token = links.mint(_secret(), tenant_id, run_id, ttl_s or settings.review_ttl_s)
    return f"{settings.review_base_url.rstrip('/')}/review/{run_id}?token={token}"


def tenant_of(token: str | None, run_id: str) -> str:
    """The tenant a valid token for `run_id` names; TokenInvalid (401) or TokenExpired (403)."""
    if not token:
        raise links.TokenInvalid("a review link needs its token")
    return links.verify(_secret(), token, run_id)


def page(run_id: str, token: str | None) -> tuple[str, dict[str, str]]:
    """The review page of the run the token opens, and the headers it must be sent with (strict CSP)."""
    from harvey.drafting import runs
    from harvey.review import page as review_page

    tenant_id = tenant_of(token, run_id)
    row = runs.get(tenant_id, run_id)
    if row is None:
        raise RunMissing(f"run {run_id} no longer exists")
    if row["status"] in ("queued", "running"):
        raise RunNotReady(f"run {run_id} is still {row['status']}")
    view = review_page.view_from_result(run_id, row["result"] or {}, doc_type=row["doc_type"])
    nonce = review_page.new_nonce()
    assert token is not None
    return review_page.render(view, token, nonce), review_page.response_headers(nonce)


def record(run_id: str, token: str | None, body: dict[str, Any], idempotency_key: str | None):  # noqa: ANN201
    """Store what the page posted as ordinary feedback on its run (a `store.feedback.Recorded`)."""
    from harvey.store import feedback, limits, tenants

    tenant_id = tenant_of(token, run_id)
    if body.get("run_id") != run_id:
        raise InvalidRequest("run_id", "a review link posts feedback only on its own run")
    limits.admit(tenants.recent_by_id(tenant_id))
    dedupe = f"idem:{idempotency_key}" if idempotency_key else None
    return feedback.record(tenant_id, body, dedupe_key=dedupe, same_body_required=True)
