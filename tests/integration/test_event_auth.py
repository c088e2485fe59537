"""CloudEvents need a Knative Eventing OIDC sender token (HARVEY_EVENTS_AUTH=oidc).

A test issuer on 127.0.0.1 serves OpenID discovery and a JWKS built from RSA keys made here;
tokens are signed like a cluster's ServiceAccount tokens. Checked at the module level
(harvey.edge.eventauth.verify) and through the three real functions, in binary and structured mode.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
import uuid
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from harvey.edge import eventauth
from harvey.store import db

from tests.integration.test_feedback import finished_run
from tests.integration.test_generate_http import VALID

AUDIENCE = "harvey-test-audience"
BROKER_SUBJECT = "system:serviceaccount:harvey:feedback-submitted-oidc-eventing.knative.dev-trigger"
PING_SUBJECT = "system:serviceaccount:harvey:retention-oidc-sources.knative.dev-pingsource"


@cache
def rsa_key(name: str) -> rsa.RSAPrivateKey:
    """One RSA key per name for the module (generating 2048-bit keys is the slow part)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Issuer:
    """An OIDC issuer on 127.0.0.1 (optionally over TLS): discovery + JWKS, counting JWKS fetches."""

    def __init__(self, tls: tuple[str, str] | None = None) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {"key-1": rsa_key("issuer")}
        self.jwks_hits = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/openid/v1/jwks"}
                elif self.path == "/openid/v1/jwks":
                    issuer.jwks_hits += 1
                    body = {"keys": [issuer.jwk(kid, key) for kid, key in issuer.keys.items()]}
                else:
                    self.send_error(404)
                    return
                payload = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @staticmethod
    def jwk(kid: str, key: rsa.RSAPrivateKey) -> dict:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        return {**public, "kid": kid, "use": "sig", "alg": "RS256"}

    def token(self, kid: str = "key-1", key: rsa.RSAPrivateKey | None = None, **claims) -> str:
        """A ServiceAccount-like token; `claims` override the defaults (None drops a claim)."""
        now = int(time.time())
        body = {"iss": self.url, "aud": AUDIENCE, "sub": BROKER_SUBJECT, "iat": now, "nbf": now, "exp": now + 600}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key or self.keys[kid], algorithm="RS256", headers={"kid": kid})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_b64(issuer: Issuer) -> str:
    now = int(time.time())
    return b64(
        json.dumps({"iss": issuer.url, "aud": AUDIENCE, "sub": BROKER_SUBJECT, "iat": now, "exp": now + 600}).encode()
    )


def unsigned_token(issuer: Issuer) -> str:
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "key-1"}).encode())
    return f"{header}.{claims_b64(issuer)}."


def hs256_with_public_key(issuer: Issuer) -> str:
    """The key-confusion attack: HMAC keyed with the issuer's public key (which anyone can fetch)."""
    public_pem = (
        issuer.keys["key-1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "key-1"}).encode())
    body = claims_b64(issuer)
    signature = hmac.new(public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64(signature)}"


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def issuer_server():
    server = Issuer()
    yield server
    server.close()


@pytest.fixture
def issuer(issuer_server):
    """The module's issuer with its original key and a zero JWKS fetch count."""
    issuer_server.keys, issuer_server.jwks_hits = {"key-1": rsa_key("issuer")}, 0
    return issuer_server


@pytest.fixture
def oidc(settings_env, monkeypatch, issuer):
    """HARVEY_EVENTS_AUTH=oidc against the test issuer, with a fresh JWKS client cache."""
    monkeypatch.setattr(eventauth, "_clients", {})
    monkeypatch.setattr(eventauth, "_failures", {})
    settings_env(
        HARVEY_EVENTS_AUTH="oidc",
        HARVEY_EVENTS_OIDC_ISSUER=issuer.url,
        HARVEY_EVENTS_OIDC_AUDIENCE=AUDIENCE,
        HARVEY_EVENTS_ALLOWED_SUBJECTS=f"{BROKER_SUBJECT}, {PING_SUBJECT}",
    )
    return issuer


@pytest.fixture
def auth_log():
    """Messages harvey.edge.eventauth logs during the test (logs.setup may have rerouted the root logger)."""
    messages: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("harvey.edge.eventauth")
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- the verifier -----------------------------------------------------------------------------------


def test_a_broker_token_is_accepted_and_names_its_sender(oidc):
    sender = eventauth.verify(bearer(oidc.token()))
    assert sender == eventauth.Sender(subject=BROKER_SUBJECT, issuer=oidc.url)


def test_expiry_within_the_leeway_is_accepted_beyond_it_refused(oidc):
    now = int(time.time())
    assert eventauth.verify(bearer(oidc.token(exp=now - 10))).subject == BROKER_SUBJECT
    with pytest.raises(eventauth.EventUnauthorized, match="expired"):
        eventauth.verify(bearer(oidc.token(exp=now - 120)))


REFUSED = {
    "no token": lambda iss, key: {},
    "not bearer": lambda iss, key: {"Authorization": f"Basic {iss.token()}"},
    "api key": lambda iss, key: bearer(key),
    "expired": lambda iss, key: bearer(iss.token(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)),
    "wrong issuer": lambda iss, key: bearer(iss.token(iss="https://kubernetes.other.example")),
    "wrong audience": lambda iss, key: bearer(iss.token(aud="another-service")),
    "subject not allowed": lambda iss, key: bearer(iss.token(sub="system:serviceaccount:harvey:attacker")),
    "no subject": lambda iss, key: bearer(iss.token(sub=None)),
    "no iat": lambda iss, key: bearer(iss.token(iat=None)),
    "foreign key, known kid": lambda iss, key: bearer(iss.token(key=rsa_key("foreign"))),
    "foreign key, unknown kid": lambda iss, key: bearer(iss.token(kid="forged", key=rsa_key("foreign"))),
    "alg none": lambda iss, key: bearer(unsigned_token(iss)),
    "hs256 with the public key": lambda iss, key: bearer(hs256_with_public_key(iss)),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_bad_sender_token_is_refused(oidc, case):
    headers = REFUSED[case](oidc, "hv_" + "x" * 40)
    with pytest.raises(eventauth.EventUnauthorized) as refused:
        eventauth.verify(headers)
    token = headers.get("Authorization", " ").split(" ", 1)[1]
    assert not token or token not in str(refused.value)


def test_oidc_without_issuer_or_audience_refuses_every_event_and_says_what_to_set(settings_env, issuer, auth_log):
    settings_env(HARVEY_EVENTS_AUTH="oidc", HARVEY_EVENTS_OIDC_ISSUER="", HARVEY_EVENTS_OIDC_AUDIENCE="")
    with pytest.raises(eventauth.EventUnauthorized, match="HARVEY_EVENTS_OIDC_ISSUER and HARVEY_EVENTS_OIDC_AUDIENCE"):
        eventauth.verify(bearer(issuer.token()))
    eventauth.warn_if_insecure()
    assert any("every CloudEvent is refused" in m for m in auth_log)


def test_auth_none_accepts_anything_and_warns_at_start(settings_env, auth_log):
    settings_env(HARVEY_EVENTS_AUTH="none")
    assert eventauth.verify({}) == eventauth.UNAUTHENTICATED
    eventauth.warn_if_insecure()
    assert any("HARVEY_EVENTS_AUTH=none" in m for m in auth_log)


def test_configured_oidc_starts_without_a_warning(oidc, auth_log):
    eventauth.warn_if_insecure()
    assert auth_log == []


def test_keys_are_cached_between_deliveries(oidc):
    for _ in range(5):
        eventauth.verify(bearer(oidc.token()))
    assert oidc.jwks_hits == 1


def test_a_rotated_key_is_picked_up_without_restart(oidc, monkeypatch):
    monkeypatch.setattr(eventauth, "REFRESH_COOLDOWN_S", 0.0)
    eventauth.verify(bearer(oidc.token()))
    oidc.keys = {"key-2": rsa_key("rotated")}
    assert eventauth.verify(bearer(oidc.token(kid="key-2"))).subject == BROKER_SUBJECT
    assert oidc.jwks_hits == 2
    with pytest.raises(eventauth.EventUnauthorized, match="does not publish"):
        eventauth.verify(bearer(oidc.token(kid="key-1", key=rsa_key("foreign"))))


def test_forged_key_ids_do_not_make_every_request_refetch_the_jwks(oidc):
    eventauth.verify(bearer(oidc.token()))
    for n in range(5):
        with pytest.raises(eventauth.EventUnauthorized):
            eventauth.verify(bearer(oidc.token(kid=f"forged-{n}", key=rsa_key("foreign"))))
    assert oidc.jwks_hits == 1


def test_an_explicit_jwks_url_skips_discovery(settings_env, oidc):
    settings_env(HARVEY_EVENTS_OIDC_JWKS_URL=oidc.url + "/openid/v1/jwks")
    assert eventauth.verify(bearer(oidc.token())).subject == BROKER_SUBJECT


def test_an_unreachable_jwks_is_unavailable_not_unauthorized(settings_env, oidc):
    settings_env(HARVEY_EVENTS_OIDC_JWKS_URL=closed_port_url() + "/openid/v1/jwks")
    with pytest.raises(eventauth.VerifierUnavailable) as unavailable:
        eventauth.verify(bearer(oidc.token()))
    assert unavailable.value.retry_after > 0


def test_an_unreachable_issuer_is_unavailable_and_recovers_once_it_answers(settings_env, oidc):
    real = oidc.url
    settings_env(HARVEY_EVENTS_OIDC_ISSUER=closed_port_url())
    with pytest.raises(eventauth.VerifierUnavailable):
        eventauth.verify(bearer(oidc.token()))
    settings_env(HARVEY_EVENTS_OIDC_ISSUER=real)
    assert eventauth.verify(bearer(oidc.token())).issuer == real


def self_signed(tmp_path) -> tuple[str, str]:
    key = rsa_key("tls")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test issuer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "issuer.crt", tmp_path / "issuer.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


def test_an_issuer_over_tls_needs_its_ca_bundle(settings_env, monkeypatch, tmp_path):
    cert, key = self_signed(tmp_path)
    tls_issuer = Issuer(tls=(cert, key))
    try:
        monkeypatch.setattr(eventauth, "_clients", {})
        monkeypatch.setattr(eventauth, "_failures", {})
        settings_env(
            HARVEY_EVENTS_AUTH="oidc",
            HARVEY_EVENTS_OIDC_ISSUER=tls_issuer.url,
            HARVEY_EVENTS_OIDC_AUDIENCE=AUDIENCE,
            HARVEY_EVENTS_ALLOWED_SUBJECTS=BROKER_SUBJECT,
        )
        with pytest.raises(eventauth.VerifierUnavailable):
            eventauth.verify(bearer(tls_issuer.token()))
        settings_env(HARVEY_EVENTS_OIDC_CA_BUNDLE=cert)
        assert eventauth.verify(bearer(tls_issuer.token())).subject == BROKER_SUBJECT
    finally:
        tls_issuer.close()


def test_concurrent_first_deliveries_fetch_the_keys_once(oidc):
    results: list[str] = []

    def deliver() -> None:
        results.append(eventauth.verify(bearer(oidc.token())).subject)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [BROKER_SUBJECT] * 8
    assert oidc.jwks_hits == 1


# --- through the functions --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clients():
    from functions_framework import create_app

    return {
        name: create_app(name, f"functions/{name}/main.py").test_client()
        for name in ("feedback", "maintenance", "generate")
    }


def event_for(function: str, tenant_id: str, **data) -> CloudEvent:
    attributes = {
        "feedback": {"type": "com.harvey.feedback.submitted", "source": "/test/feedback"},
        "maintenance": {"type": "dev.knative.sources.ping", "source": "/apis/v1/namespaces/harvey/pingsources/t"},
        "generate": {"type": "com.harvey.generate.requested", "source": "/test/intake"},
    }[function]
    body = {
        "feedback": {"tenant_id": tenant_id, "rating": 1},
        "maintenance": {"task": "retention", "dry_run": True},
        "generate": {"tenant_id": tenant_id, **VALID},
    }[function]
    return CloudEvent({**attributes, "id": str(uuid.uuid4())}, {**body, **data})


def deliver(client, event: CloudEvent, headers: dict[str, str], mode: str = "binary"):
    ce_headers, body = (to_binary if mode == "binary" else to_structured)(event)
    return client.post("/", data=body, headers={**dict(ce_headers), **headers})


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_feedback_event_with_a_broker_token_is_stored(clients, oidc, make_tenant, mode):
    tenant, _ = make_tenant()
    event = event_for("feedback", tenant.id, run_id=finished_run(tenant))
    answer = deliver(clients["feedback"], event, bearer(oidc.token()), mode)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    row = db.one("SELECT count(*) AS n FROM feedback_events WHERE tenant_id = CAST(:t AS uuid)", t=tenant.id)
    assert row["n"] == 1


def test_maintenance_ping_with_the_pingsource_token_runs(clients, oidc):
    answer = deliver(clients["maintenance"], event_for("maintenance", ""), bearer(oidc.token(sub=PING_SUBJECT)))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.headers["X-Harvey-Task"] == "retention"


def test_generate_requested_event_with_a_broker_token_runs(clients, oidc, indexed_tenant):
    tenant, _ = indexed_tenant
    answer = deliver(clients["generate"], event_for("generate", tenant.id), bearer(oidc.token()))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.headers["X-Harvey-Run-Status"] == "succeeded"


@pytest.mark.parametrize("mode", ["binary", "structured"])
@pytest.mark.parametrize("case", list(REFUSED))
@pytest.mark.parametrize("function", ["feedback", "maintenance", "generate"])
def test_every_event_path_refuses_a_bad_sender_with_401(clients, oidc, make_tenant, function, case, mode):
    tenant, key = make_tenant()
    headers = REFUSED[case](oidc, key)
    event = (
        event_for(function, tenant.id, run_id=finished_run(tenant))
        if function == "feedback"
        else event_for(function, tenant.id)
    )
    answer = deliver(clients[function], event, headers, mode)
    assert answer.status_code == 401, answer.get_data(as_text=True)
    token = headers.get("Authorization", " ").split(" ", 1)[1]
    assert not token or token not in answer.get_data(as_text=True)
    for table in ("feedback_events", "runs"):
        count = db.one(f"SELECT count(*) AS n FROM {table} WHERE tenant_id = CAST(:t AS uuid)", t=tenant.id)
        assert count["n"] == (1 if table == "runs" and function == "feedback" else 0), table
    assert db.one("SELECT count(*) AS n FROM event_ledger WHERE event_id = :id", id=event["id"])["n"] == 0


def test_an_unauthenticated_event_cannot_tell_which_tenants_exist(clients, oidc, make_tenant):
    tenant, _ = make_tenant()
    answers = [
        deliver(clients["feedback"], event_for("feedback", tenant_id, run_id=str(uuid.uuid4())), {})
        for tenant_id in (tenant.id, str(uuid.uuid4()), "not-a-uuid")
    ]
    assert {a.status_code for a in answers} == {401}
    assert len({a.get_data() for a in answers}) == 1


def test_maintenance_purge_by_tenant_name_needs_a_sender_token(clients, oidc, make_tenant):
    tenant, _ = make_tenant()
    event = CloudEvent(
        {"type": "com.harvey.maintenance.requested", "source": "/probe", "id": str(uuid.uuid4())},
        {"task": "purge_document", "tenant": tenant.name, "document_id": "CDC:art26"},
    )
    assert deliver(clients["maintenance"], event, {}).status_code == 401
    assert deliver(clients["maintenance"], event, {}, "structured").status_code == 401


@pytest.mark.parametrize("function", ["feedback", "maintenance", "generate"])
def test_an_unreachable_jwks_is_503_with_retry_after_so_the_broker_redelivers(clients, settings_env, oidc, function):
    settings_env(HARVEY_EVENTS_OIDC_JWKS_URL=closed_port_url() + "/openid/v1/jwks")
    answer = deliver(clients[function], event_for(function, str(uuid.uuid4())), bearer(oidc.token()))
    assert answer.status_code == 503
    assert int(answer.headers["Retry-After"]) > 0


def test_the_http_api_still_takes_api_keys_when_events_need_oidc(clients, oidc, make_tenant):
    tenant, key = make_tenant()
    answer = clients["feedback"].post(
        "/", json={"run_id": finished_run(tenant), "rating": 1}, headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status_code == 201, answer.get_data(as_text=True)


def test_a_hung_issuer_costs_one_fetch_not_one_per_forged_token(settings_env, oidc):
    """Forged tokens reach discovery without a valid signature: they must not queue behind it."""
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(64)  # accepts, never answers
    try:
        settings_env(HARVEY_EVENTS_OIDC_ISSUER=f"http://127.0.0.1:{hung.getsockname()[1]}")
        outcomes: list[str] = []

        def deliver() -> None:
            try:
                eventauth.verify(bearer(oidc.token()))
            except eventauth.VerifierUnavailable:
                outcomes.append("503")

        started = time.monotonic()
        threads = [threading.Thread(target=deliver) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        again = time.monotonic()
        with pytest.raises(eventauth.VerifierUnavailable, match="moments ago"):
            eventauth.verify(bearer(oidc.token()))
        assert time.monotonic() - again < 0.5  # the remembered failure answers at once
    finally:
        hung.close()
    assert outcomes == ["503"] * 8
    assert elapsed < 3 * eventauth.FETCH_TIMEOUT_S  # one fetch's timeout, not eight in a row


def test_oidc_without_an_allow_list_refuses_every_event(settings_env, oidc):
    settings_env(HARVEY_EVENTS_ALLOWED_SUBJECTS="")
    with pytest.raises(eventauth.EventUnauthorized, match="HARVEY_EVENTS_ALLOWED_SUBJECTS"):
        eventauth.verify(bearer(oidc.token()))
