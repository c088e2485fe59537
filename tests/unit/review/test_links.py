"""Signed review links: a token opens one run of one tenant until it expires, and nothing else."""

from __future__ import annotations

import base64
import json

import pytest
from harvey.review import links
from harvey.review.links import TokenExpired, TokenInvalid

SECRET = b"s" * 32
TENANT = "0b6f1c56-2a43-4f8e-9c1e-8d2f3a4b5c6d"
RUN = "7d1e2f3a-4b5c-4d6e-8f90-a1b2c3d4e5f6"
NOW = 1_800_000_000.0


def _payload(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _with_payload(token: str, claims: dict) -> str:
    version, _, mac = token.split(".")
    raw = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
    return f"{version}.{base64.urlsafe_b64encode(raw).rstrip(b'=').decode()}.{mac}"


def test_a_minted_token_verifies_to_its_tenant_for_its_run():
    token = links.mint(SECRET, TENANT, RUN, 3600, now=NOW)
    assert links.verify(SECRET, token, RUN, now=NOW + 3599) == TENANT
    assert token.startswith("h1.") and len(token) < 300
    assert all(c.isalnum() or c in "-_." for c in token)  # URL-safe as it is: no escaping in a link


def test_the_payload_says_tenant_run_and_expiry():
    assert _payload(links.mint(SECRET, TENANT, RUN, 600, now=NOW)) == {"e": int(NOW) + 600, "r": RUN, "t": TENANT}


def test_a_token_is_scoped_to_its_run():
    token = links.mint(SECRET, TENANT, RUN, 3600, now=NOW)
    with pytest.raises(TokenInvalid):
        links.verify(SECRET, token, "11111111-2222-4333-8444-555555555555", now=NOW)


def test_another_tenant_written_into_the_payload_is_refused():
    token = links.mint(SECRET, TENANT, RUN, 3600, now=NOW)
    forged = _with_payload(token, {**_payload(token), "t": "ffffffff-ffff-4fff-8fff-ffffffffffff"})
    with pytest.raises(TokenInvalid):
        links.verify(SECRET, forged, RUN, now=NOW)


def test_a_later_expiry_written_into_the_payload_is_refused():
    token = links.mint(SECRET, TENANT, RUN, 60, now=NOW)
    forged = _with_payload(token, {**_payload(token), "e": int(NOW) + 10**8})
    with pytest.raises(TokenInvalid):
        links.verify(SECRET, forged, RUN, now=NOW + 120)


@pytest.mark.parametrize("position", [3, 20, -1])
def test_any_changed_character_is_refused(position):
    token = links.mint(SECRET, TENANT, RUN, 3600, now=NOW)
    changed = "A" if token[position] != "A" else "B"
    tampered = token[:position] + changed + token[position + 1 :] if position != -1 else token[:-1] + changed
    with pytest.raises(TokenInvalid):
        links.verify(SECRET, tampered, RUN, now=NOW)


def test_another_secret_is_refused():
    token = links.mint(SECRET, TENANT, RUN, 3600, now=NOW)
    with pytest.raises(TokenInvalid):
        links.verify(b"t" * 32, token, RUN, now=NOW)


def test_an_expired_token_is_expired_not_invalid():
    token = links.mint(SECRET, TENANT, RUN, 3600, now=NOW)
    with pytest.raises(TokenExpired):
        links.verify(SECRET, token, RUN, now=NOW + 3600)
    assert not issubclass(TokenExpired, TokenInvalid)  # 403 "ask for a new link", not 401


def test_an_expired_token_for_another_run_is_invalid():
    token = links.mint(SECRET, TENANT, RUN, 60, now=NOW)
    with pytest.raises(TokenInvalid):
        links.verify(SECRET, token, "11111111-2222-4333-8444-555555555555", now=NOW + 3600)


@pytest.mark.parametrize(
    "token",
    ["", "h1", "h1..", "h1.abc", "h2.e30.abc", "h1.e30.abc.def", "h1.%%%.abc", "h1.é.abc", "x" * 2000, None, 42],
)
def test_malformed_tokens_are_invalid(token):
    with pytest.raises(TokenInvalid):
        links.verify(SECRET, token, RUN, now=NOW)


def test_a_signed_payload_of_the_wrong_shape_is_invalid():
    """Only this module signs, but a payload it would never write is still refused, not trusted."""
    for claims in ([1, 2], {"t": TENANT, "r": RUN}, {"t": TENANT, "r": RUN, "e": "soon"}, {"t": 1, "r": RUN, "e": 1}):
        raw = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        token = f"h1.{raw}.{links._mac(SECRET, raw)}"
        with pytest.raises(TokenInvalid):
            links.verify(SECRET, token, RUN, now=NOW)


@pytest.mark.parametrize("secret", [b"", b"short", "s" * 32])
def test_a_weak_or_textual_secret_is_a_configuration_error(secret):
    with pytest.raises(ValueError, match="HARVEY_REVIEW_SECRET"):
        links.mint(secret, TENANT, RUN, 60)
    with pytest.raises(ValueError, match="HARVEY_REVIEW_SECRET"):
        links.verify(secret, "h1.e30.abc", RUN)


@pytest.mark.parametrize("ttl", [0, -5, links.MAX_TTL_S + 1])
def test_mint_refuses_a_lifetime_out_of_bounds(ttl):
    with pytest.raises(ValueError):
        links.mint(SECRET, TENANT, RUN, ttl)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("7d", 7 * 86400), ("12h", 43200), ("30m", 1800), ("3600", 3600), ("45s", 45), (" 2D ", 172800), ("90d", 7776000)],
)
def test_parse_ttl(text, seconds):
    assert links.parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0d", "7w", "-1h", "1.5h", "d", "91d", "7 d", "99999999999"])
def test_parse_ttl_refuses(text):
    with pytest.raises(ValueError, match="--ttl"):
        links.parse_ttl(text)
