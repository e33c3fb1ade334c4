"""Exact fixed-point numbers.

Every Binance price and quantity is a decimal string with at most 8 fractional
digits, so tickloop stores them as integers in units of 1e-8 ("e8"). This scale
is global, not per-instrument: a log can be written before exchangeInfo is known
and decoded without it. Tick and step sizes are e8 integers too, so "is this a
multiple of the tick" is an exact integer modulo. Products (price x qty) are
Python ints (arbitrary precision), never floats.
"""

from __future__ import annotations

from typing import NewType

SCALE_DIGITS = 8
SCALE: int = 10**SCALE_DIGITS

Price = NewType("Price", int)
"""A price in e8 units of the quote asset."""
Quantity = NewType("Quantity", int)
"""A quantity in e8 units of the base asset."""
Money = NewType("Money", int)
"""An amount of some asset in e8 units."""

_DIGITS = frozenset("0123456789")


def parse_e8(text: str | bytes, *, signed: bool = False) -> int:
    """Parse a decimal string exactly into e8 units.

    Rejects NaN, infinities, exponents, empty strings, more than 8 significant
    fractional digits and (unless ``signed``) negative values, with a ValueError
    that quotes the text.
    """
    s = text.decode() if isinstance(text, bytes) else text
    neg = False
    body = s
    if body[:1] in ("-", "+"):
        neg = body[0] == "-"
        body = body[1:]
        if neg and not signed:
            raise ValueError(f"negative value not allowed: {s!r}")
    whole, dot, frac = body.partition(".")
    if not whole and not frac or not _DIGITS.issuperset(whole) or not _DIGITS.issuperset(frac):
        raise ValueError(f"not a plain decimal number: {s!r}")
    if len(frac) > SCALE_DIGITS:
        if frac[SCALE_DIGITS:].strip("0"):
            raise ValueError(f"more than {SCALE_DIGITS} decimal places: {s!r}")
        frac = frac[:SCALE_DIGITS]
    value = int(whole or "0") * SCALE + (int(frac.ljust(SCALE_DIGITS, "0")) if frac else 0)
    return -value if neg else value


def format_e8(value: int) -> str:
    """Format e8 units as the shortest exact decimal string ("61837.63", "0.001", "5")."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), SCALE)
    if not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:08d}".rstrip("0")


def format_e8_fixed(value: int, decimals: int = SCALE_DIGITS) -> str:
    """Format with exactly ``decimals`` places, the way Binance prints numbers."""
    if not 0 <= decimals <= SCALE_DIGITS:
        raise ValueError(f"decimals must be 0..{SCALE_DIGITS}, got {decimals}")
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), SCALE)
    if decimals == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:08d}"[: len(sign) + len(str(whole)) + 1 + decimals]


def e8_to_float(value: int) -> float:
    """For features and reports only: the venue, portfolio and fees never use floats."""
    return value / SCALE


def decimals_of(step_e8: int) -> int:
    """How many decimal places a tick/step size has (0.01 -> 2, 1 -> 0)."""
    if step_e8 <= 0:
        raise ValueError(f"step must be positive, got {step_e8}")
    digits = SCALE_DIGITS
    while digits > 0 and step_e8 % 10 == 0:
        step_e8 //= 10
        digits -= 1
    return digits
