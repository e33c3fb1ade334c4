"""Binance's REST error answers as one exception: ``{"code": .., "msg": ..}`` plus the HTTP status.

Why a class of its own: the protocol layer raises it from deep inside parameter parsing,
signature checks and rate limiting, and exactly one place (``VenueProtocol.handle``) turns it
into a response. Statuses follow Binance: 4XX for malformed requests (-11xx, -10xx, -20xx),
401 for key errors (-2014/-2015), 429 for rate limits, 418 for an IP ban.
"""

from __future__ import annotations

from engine.errors import RequestRejected


class ApiError(RequestRejected):
    """A request the server answers with Binance's error body; ``status`` is the HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400, retry_after_s: int | None = None) -> None:
        super().__init__(code, msg)
        self.status = status
        self.retry_after_s = retry_after_s

    def body(self) -> dict[str, object]:
        """The JSON body Binance sends: ``{"code": -1022, "msg": "..."}``."""
        return {"code": self.code, "msg": self.msg}


def mandatory(name: str) -> ApiError:
    """-1102 for a missing or empty parameter (Binance's exact wording)."""
    return ApiError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def illegal(name: str) -> ApiError:
    """-1100 for a parameter with characters Binance refuses."""
    return ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.")


def bad_enum(name: str) -> ApiError:
    """-1116/-1117/-1115 style error for an invalid enum value, worded like Binance's -1100 family."""
    return ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is an enum value.")
