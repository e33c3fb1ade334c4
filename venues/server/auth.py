"""Binance's request security: API key, HMAC-SHA256 signature, timestamp and recvWindow.

Sans-I/O: :meth:`Auth.check` gets the raw query string, the raw form body, the API-key header
and the server's "now" (ms) and either returns or raises :class:`ApiError` with Binance's code:

- no/empty key -> -2014 "API-key format invalid." (401); unknown key -> -2015 (401);
- missing ``signature`` -> -1102; wrong signature -> -1022 "Signature for this request is not valid.";
- missing ``timestamp`` -> -1102; ``recvWindow`` over 60000 -> -1131;
  ``timestamp >= now + 1000`` or ``now - timestamp > recvWindow`` -> -1021.

The signed payload is exactly what Binance signs: the query string concatenated with the body
(no separator), with the ``signature`` parameter itself removed wherever it was sent. Binance's
documented test vector is checked in the unit tests.
"""

from __future__ import annotations

import hashlib
import hmac
import string
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from venues.server.errors import ApiError, mandatory

DEFAULT_RECV_WINDOW_MS = 5000
MAX_RECV_WINDOW_MS = 60000
FUTURE_TOLERANCE_MS = 1000
_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True)
class Credentials:
    """One API key pair (HMAC): the key goes in ``X-MBX-APIKEY``, the secret signs."""

    api_key: str
    api_secret: str

    @classmethod
    def demo(cls, seed: int) -> Credentials:
        """Deterministic 64-character demo credentials derived from ``seed`` (same seed, same keys).

        Why derived, not random: a test or a script started with ``--seed`` knows the keys
        without reading them back, and the server stays free of unseeded randomness.
        """
        return cls(_derive(seed, "api_key"), _derive(seed, "api_secret"))


def _derive(seed: int, purpose: str) -> str:
    out: list[str] = []
    counter = 0
    while len(out) < 64:
        digest = hashlib.sha256(f"tickloop-demo:{seed}:{purpose}:{counter}".encode()).digest()
        out.extend(_ALPHABET[b % len(_ALPHABET)] for b in digest if b < 248)  # 248 = 4 * 62: unbiased
        counter += 1
    return "".join(out[:64])


def sign(secret: str, payload: str) -> str:
    """Binance's HMAC-SHA256 signature (lowercase hex) of ``payload`` with ``secret``."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def strip_signature(raw: str) -> tuple[str, str | None]:
    """``raw`` (a query string or form body) without its ``signature=...`` part, and that value."""
    if not raw:
        return "", None
    kept: list[str] = []
    found: str | None = None
    for part in raw.split("&"):
        if part.startswith("signature="):
            found = part[len("signature="):]
        else:
            kept.append(part)
    return "&".join(kept), found


def signed_payload(query: str, body: str) -> tuple[str, str | None]:
    """The exact bytes Binance verifies (query + body, signature removed) and the sent signature."""
    q, sig_q = strip_signature(query)
    b, sig_b = strip_signature(body)
    return q + b, sig_q if sig_q is not None else sig_b


class Auth:
    """Checks API keys, signatures and timestamps for one server (one account, one or more keys)."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self._secrets = {credentials.api_key: credentials.api_secret}

    def check_key(self, api_key: str | None) -> str:
        """The secret of ``api_key``; -2014 when absent/malformed, -2015 when unknown."""
        if not api_key or any(c not in _ALPHABET for c in api_key):
            raise ApiError(-2014, "API-key format invalid.", 401)
        secret = self._secrets.get(api_key)
        if secret is None:
            raise ApiError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        return secret

    def check(self, query: str, body: str, params: dict[str, str], api_key: str | None, now_ms: int) -> None:
        """Verify a SIGNED request (TRADE / USER_DATA); raises ApiError with Binance's code."""
        secret = self.check_key(api_key)
        payload, signature = signed_payload(query, body)
        if not signature:
            raise mandatory("signature")
        expected = sign(secret, payload)
        if not hmac.compare_digest(expected, signature.lower()):
            raise ApiError(-1022, "Signature for this request is not valid.")
        check_timestamp(params, now_ms)


def check_timestamp(params: dict[str, str], now_ms: int) -> None:
    """Binance's timing rule: ``timestamp < now + 1000`` and ``now - timestamp <= recvWindow``."""
    ts_text = params.get("timestamp")
    if not ts_text:
        raise mandatory("timestamp")
    try:
        ts = int(ts_text)
    except ValueError:
        raise ApiError(-1100, "Illegal characters found in parameter 'timestamp'; legal range is '^[0-9]{1,20}$'.") from None
    if ts >= 10**15:  # microseconds (Binance accepts both)
        ts //= 1000
    window = _recv_window(params.get("recvWindow"))
    if ts >= now_ms + FUTURE_TOLERANCE_MS:
        raise ApiError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if now_ms - ts > window:
        raise ApiError(-1021, "Timestamp for this request is outside of the recvWindow.")


def _recv_window(text: str | None) -> Decimal:
    if text is None or text == "":
        return Decimal(DEFAULT_RECV_WINDOW_MS)
    try:
        window = Decimal(text)
    except InvalidOperation:
        raise ApiError(-1100, "Illegal characters found in parameter 'recvWindow'; legal range is '^[0-9]{1,20}$'.") from None
    if window > MAX_RECV_WINDOW_MS or window <= 0 or window != window.quantize(Decimal("0.001")):
        raise ApiError(-1131, "recvWindow must be less than 60000")
    return window
