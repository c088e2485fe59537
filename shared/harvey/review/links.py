"""Signed review links: who may open the review page of one run, and until when.

A token is `h1.<payload>.<mac>`. The payload is the URL-safe base64 (unpadded) of the canonical JSON
{"e": expiry in Unix seconds, "r": run id, "t": tenant id}; the mac is the URL-safe base64 of
HMAC-SHA256(secret, "h1." + payload). The page has no API key, so the tenant comes from the token;
the run is signed too, so a link cannot be moved to another run. The version prefix lets a later
format live beside this one. Rotating the secret ends every outstanding link.

Errors: `TokenInvalid` (malformed, tampered, another run, another secret: 401) and `TokenExpired`
(authentic but past its expiry: 403, "ask for a new link").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time

VERSION = "h1"
MIN_SECRET_BYTES = 32
MAX_TTL_S = 90 * 86400  # a link lives in e-mails and printed drafts: it must run out
MAX_TOKEN_CHARS = 1024
_TTL = re.compile(r"(\d{1,9})([smhd]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class TokenInvalid(Exception):
    """The token is not one this secret signed for this run."""


class TokenExpired(Exception):
    """The token is authentic but past its expiry."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, f"{VERSION}.{payload}".encode("ascii"), hashlib.sha256).digest())


def _check_secret(secret: bytes) -> None:
    if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the review secret must be at least {MIN_SECRET_BYTES} bytes (HARVEY_REVIEW_SECRET)")


def mint(secret: bytes, tenant_id: str, run_id: str, ttl_s: int, now: float | None = None) -> str:
    """A token that opens `run_id`'s review page for `tenant_id` during the next `ttl_s` seconds."""
    _check_secret(secret)
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"ttl_s must be between 1 and {MAX_TTL_S} seconds")
    if not tenant_id or not run_id:
        raise ValueError("tenant_id and run_id are required")
    expiry = int((time.time() if now is None else now) + ttl_s)
    claims = {"e": expiry, "r": run_id, "t": tenant_id}
    payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8"))
    return f"{VERSION}.{payload}.{_mac(secret, payload)}"


def verify(secret: bytes, token: str, run_id: str, now: float | None = None) -> str:
    """The tenant id a valid, unexpired token for `run_id` was minted for; TokenInvalid / TokenExpired.

    The mac is compared (in constant time, as text: one canonical encoding) before anything in the
    payload is read, so nothing an attacker wrote is parsed unless this secret signed it."""
    _check_secret(secret)
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise TokenInvalid("malformed review token")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != VERSION or not parts[1]:
        raise TokenInvalid("malformed review token")
    _, payload, mac = parts
    if not hmac.compare_digest(_mac(secret, payload).encode("ascii"), mac.encode("ascii")):
        raise TokenInvalid("review token signature does not match")
    try:
        claims = json.loads(_unb64(payload))
    except (binascii.Error, ValueError):
        raise TokenInvalid("malformed review token") from None
    if (
        not isinstance(claims, dict)
        or set(claims) != {"e", "r", "t"}
        or not isinstance(claims["t"], str)
        or not isinstance(claims["r"], str)
        or type(claims["e"]) is not int
    ):
        raise TokenInvalid("malformed review token")
    if not hmac.compare_digest(claims["r"].encode("utf-8"), str(run_id).encode("utf-8")):
        raise TokenInvalid("review token is for another run")
    if (time.time() if now is None else now) >= claims["e"]:
        raise TokenExpired("review link expired")
    return claims["t"]


def parse_ttl(text: str) -> int:
    """Seconds in a --ttl value: "7d", "12h", "30m", "45s" or plain seconds ("3600")."""
    match = _TTL.fullmatch(str(text).strip().lower())
    seconds = int(match.group(1)) * _UNIT_S[match.group(2)] if match else 0
    if not 0 < seconds <= MAX_TTL_S:
        raise ValueError(f"--ttl must be like 7d, 12h, 30m or 3600 (seconds), at most {MAX_TTL_S // 86400}d")
    return seconds
