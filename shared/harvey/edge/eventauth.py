"""Who sent a CloudEvent: the Knative Eventing OIDC token checked before an event is used.

Events carry `tenant_id` in their data, so an unauthenticated event path lets anyone who can
reach a function act in any tenant. With `HARVEY_EVENTS_AUTH=oidc` (the default) every
delivery needs the `Authorization: Bearer` token Knative attaches (a Kubernetes ServiceAccount
token issued for the target's audience): RS256/ES256 only, checked against the issuer's JWKS,
with exp, iat, iss, aud and sub required and the subject in `HARVEY_EVENTS_ALLOWED_SUBJECTS`
when that is set. A refusal is `EventUnauthorized` (401, final for a broker); an unreachable
issuer is `VerifierUnavailable` (503 + Retry-After, so the broker redelivers instead of
dropping the event). `jwt`, `ssl` and `urllib` are imported on first use: cold starts matter more than the first
event's few milliseconds.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from harvey.config import Settings, get_settings

if TYPE_CHECKING:
    import ssl

    from jwt import PyJWKClient

log = logging.getLogger("harvey.edge.eventauth")
# Asymmetric only: accepting HS* would let anyone sign with the (public) JWKS key as the secret.
ALGORITHMS = ("RS256", "ES256")
LEEWAY_S = 30
FETCH_TIMEOUT_S = 2.0
JWKS_LIFESPAN_S = 300.0
# An unknown `kid` refetches the JWKS (key rotation) at most this often, so forged kids cannot
# turn every request into a fetch from the issuer.
REFRESH_COOLDOWN_S = 10.0
DISCOVERY_RETRY_S = 5.0
RETRY_AFTER_S = 10
_MAX_DISCOVERY_BYTES = 64 * 1024


class Headers(Protocol):
    """A dict or werkzeug's request headers: all verify() reads is `Authorization`."""

    def get(self, key: str, /) -> str | None: ...


class EventUnauthorized(Exception):
    """The event's sender is not authenticated (answer 401; a broker does not retry)."""


class VerifierUnavailable(Exception):
    """The issuer's discovery document or JWKS cannot be fetched (answer 503; the broker retries)."""

    def __init__(self, message: str, retry_after: int = RETRY_AFTER_S):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Sender:
    subject: str
    issuer: str


UNAUTHENTICATED = Sender(subject="", issuer="")
_lock = threading.Lock()
_ClientKey = tuple[str, str | None, str | None]
_clients: dict[_ClientKey, PyJWKClient] = {}
_flights: dict[_ClientKey, threading.Lock] = {}
_failures: dict[_ClientKey, float] = {}


def _missing(settings: Settings) -> list[str]:
    names = {
        "HARVEY_EVENTS_OIDC_ISSUER": settings.events_oidc_issuer,
        "HARVEY_EVENTS_OIDC_AUDIENCE": settings.events_oidc_audience,
        # Without an allow-list any workload that can mint a token for our audience could send
        # events naming any tenant: fail closed.
        "HARVEY_EVENTS_ALLOWED_SUBJECTS": ",".join(settings.events_allowed_subject_list),
    }
    return [name for name, value in names.items() if not value]


def warn_if_insecure() -> None:
    """A warning at function start (main.py import) when events would be accepted from anyone, or all refused."""
    settings = get_settings()
    if settings.events_auth == "none":
        log.warning("HARVEY_EVENTS_AUTH=none: CloudEvents are accepted from any sender (local development only)")
    elif missing := _missing(settings):
        log.warning(
            "event authentication is not configured: every CloudEvent is refused; set %s", " and ".join(missing)
        )


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    import ssl

    if settings.events_oidc_ca_bundle is None:
        return None
    return ssl.create_default_context(cafile=str(settings.events_oidc_ca_bundle))


def _discover_jwks_url(issuer: str, context: ssl.SSLContext | None) -> str:
    """`jwks_uri` from the issuer's OpenID discovery document, which must name the same issuer."""
    import urllib.request

    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S, context=context) as response:  # noqa: S310
            document = json.loads(response.read(_MAX_DISCOVERY_BYTES))
    except (OSError, ValueError) as exc:
        raise VerifierUnavailable(f"OpenID discovery of the event issuer failed: {type(exc).__name__}") from exc
    if not isinstance(document, dict) or document.get("issuer") != issuer or not document.get("jwks_uri"):
        raise VerifierUnavailable("the event issuer's discovery document does not name it or has no jwks_uri")
    return str(document["jwks_uri"])


def _client(settings: Settings, issuer: str) -> PyJWKClient:
    """The JWKS client for the configured issuer; built once per process.

    Discovery is a network call a forged token can trigger, so it runs once at a time per issuer
    (single flight, never under the global lock), and a failure is remembered for
    DISCOVERY_RETRY_S: until then every delivery gets 503 at once instead of another fetch.
    """
    import time

    from jwt import PyJWKClient

    ca_bundle = str(settings.events_oidc_ca_bundle) if settings.events_oidc_ca_bundle else None
    key = (issuer, settings.events_oidc_jwks_url, ca_bundle)
    with _lock:
        client = _clients.get(key)
        if client is not None:
            return client
        flight = _flights.setdefault(key, threading.Lock())
    if not flight.acquire(timeout=FETCH_TIMEOUT_S + 1):
        raise VerifierUnavailable("the event issuer's keys are still being fetched")
    try:
        with _lock:
            client = _clients.get(key)
            failed_at = _failures.get(key)
        if client is not None:
            return client
        if failed_at is not None and time.monotonic() - failed_at < DISCOVERY_RETRY_S:
            raise VerifierUnavailable("OpenID discovery of the event issuer failed moments ago")
        context = _ssl_context(settings)
        try:
            jwks_url = settings.events_oidc_jwks_url or _discover_jwks_url(issuer, context)
        except VerifierUnavailable:
            with _lock:
                _failures[key] = time.monotonic()
            raise
        client = PyJWKClient(
            jwks_url,
            lifespan=JWKS_LIFESPAN_S,
            timeout=FETCH_TIMEOUT_S,
            ssl_context=context,
            cooldown_duration=REFRESH_COOLDOWN_S,
        )
        with _lock:
            _clients[key] = client
            _failures.pop(key, None)
        return client
    finally:
        flight.release()


def _token(headers: Headers) -> str:
    scheme, _, token = (headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise EventUnauthorized("missing sender token: events need 'Authorization: Bearer <OIDC token>'")
    return token.strip()


def _claims(token: str, settings: Settings, issuer: str, audience: str) -> dict[str, Any]:
    import jwt

    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise EventUnauthorized("sender token is not a JWT") from None
    if header.get("alg") not in ALGORITHMS:
        raise EventUnauthorized(f"sender token must be signed with {' or '.join(ALGORITHMS)}")
    if not isinstance(header.get("kid"), str):
        raise EventUnauthorized("sender token has no key id")
    try:
        key = _client(settings, issuer).get_signing_key(header["kid"])
    except jwt.PyJWKClientConnectionError as exc:
        raise VerifierUnavailable("the event issuer's JWKS cannot be fetched") from exc
    except jwt.PyJWKClientError:
        raise EventUnauthorized("sender token is signed by a key the issuer does not publish") from None
    try:
        return jwt.decode(
            token,
            key,
            algorithms=list(ALGORITHMS),
            audience=audience,
            issuer=issuer,
            leeway=LEEWAY_S,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise EventUnauthorized("sender token has expired") from None
    except jwt.InvalidAudienceError:
        raise EventUnauthorized("sender token is not for this audience") from None
    except jwt.InvalidIssuerError:
        raise EventUnauthorized("sender token is from another issuer") from None
    except jwt.MissingRequiredClaimError as exc:
        raise EventUnauthorized(f"sender token has no '{exc.claim}' claim") from None
    except jwt.PyJWTError:
        raise EventUnauthorized("sender token signature or claims do not verify") from None


def verify(headers: Headers) -> Sender:
    """The authenticated sender of an event delivery; EventUnauthorized or VerifierUnavailable otherwise.

    Messages name the check that failed, never the token's contents.
    """
    settings = get_settings()
    if settings.events_auth == "none":
        return UNAUTHENTICATED
    issuer, audience = settings.events_oidc_issuer, settings.events_oidc_audience
    if not issuer or not audience or not settings.events_allowed_subject_list:
        raise EventUnauthorized(
            f"event authentication is not configured: the operator must set {' and '.join(_missing(settings))}"
        )
    try:
        claims = _claims(_token(headers), settings, issuer, audience)
    except EventUnauthorized as exc:
        log.warning("event sender refused: %s", exc)
        raise
    if claims["sub"] not in settings.events_allowed_subject_list:
        log.warning("event sender refused: subject not allowed", extra={"subject": claims["sub"]})
        raise EventUnauthorized("sender is not allowed to deliver events here")
    return Sender(subject=str(claims["sub"]), issuer=issuer)
