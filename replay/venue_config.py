"""The simulated venue of a backtest: a TOML file, CLI flags over it, symbol rules, and the built models.

Three steps, each a plain function so tests can take them apart:

1. :func:`load_settings` reads ``--venue-config FILE`` (``tomllib``) and lays the CLI flags over
   it (a flag given wins; ``--balance`` entries override the file's per asset). Every value is
   parsed here, and a bad one is a :class:`~engine.errors.ConfigError` naming the flag (or
   ``FILE: key``) and the value. The result, :class:`VenueSettings`, is typed and frozen.
2. :func:`resolve_symbols` gives each spot instrument of the replayed log its rules: from
   ``--exchange-info FILE``; else from the first ``InstrumentUpdated`` of that symbol in the log;
   else a permissive default derived from the data (:func:`default_symbol_dict`, flagged).
3. :func:`build_venue` makes the ``SimVenue`` and the kernel's latency model.

``VenueSettings.effective(symbols)`` is the whole effective configuration as JSON data; the
backtest puts it into ``RunStarted``'s config, so it is covered by the run hash. Files enter
it by content (SHA-256), not by path, so the hash does not depend on where they live.

The TOML file uses the flags' names and syntax (``fees = "vip3"``, ``latency =
"lognormal:1.6,0.4"``, ``impact = 0.5``, ...) plus a ``[balances]`` table (``USDT = "1000000"``)
and the keys without a flag (``bnb_discount``, ``impact_window``, ``impact_sample``,
``impact_permanent_share``, ``impact_sigma``, ``impact_volume``, ``trades_as_book``,
``l1_remainder``, ``consume_liquidity``); relative file paths are relative to the TOML file.
See ``docs/sim-venue.md`` ("Backtest wiring") for every key and default.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from engine.errors import ConfigError, InputError
from engine.events import InstrumentUpdated, Kind
from engine.fixed import SCALE, format_e8, parse_e8
from engine.identifiers import InstrumentId, Market, split_instrument_id
from engine.ports import LatencyModel, ZeroLatency
from venues.sim.adapters import VenueFees
from venues.sim.filters import symbol_rules
from venues.sim.matching import QueueModel, RiskAverseQueue
from venues.sim.venue import SimConfig, SimVenue, SymbolSpec

if TYPE_CHECKING:
    from catalogs.log import LogReader
    from catalogs.schema import ColumnBatch

DEFAULT_BALANCES: tuple[tuple[str, int], ...] = (("USDT", 1_000_000 * SCALE),)
NS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION = re.compile(r"^\s*(\d+)\s*(ns|us|ms|s|m|h)?\s*$")
_ASSET = re.compile(r"^[A-Z0-9]{1,20}$")
KNOWN_QUOTES = (
    "FDUSD",
    "USDT",
    "USDC",
    "BUSD",
    "TUSD",
    "USDP",
    "IDRT",
    "BIDR",
    "BKRW",
    "BVND",
    "DAI",
    "PAX",
    "UST",
    "VAI",
    "EUR",
    "GBP",
    "TRY",
    "AUD",
    "BRL",
    "RUB",
    "UAH",
    "NGN",
    "ZAR",
    "JPY",
    "MXN",
    "ARS",
    "PLN",
    "RON",
    "CZK",
    "COP",
    "BTC",
    "ETH",
    "BNB",
    "XRP",
    "TRX",
    "DOGE",
    "DOT",
    "USD",
)
"""Quote assets tried (longest first) to split a symbol without exchangeInfo: ``BTCUSDT`` -> BTC/USDT."""
MAX_PRICE_E8 = 10**18
MAX_QTY_E8 = 10**18
"""Bounds of the default spec's PRICE_FILTER / LOT_SIZE: far beyond any real value (permissive)."""

TOML_KEYS = frozenset(
    {
        "fees",
        "bnb_fees",
        "bnb_discount",
        "latency",
        "impact",
        "impact_half_life",
        "impact_window",
        "impact_sample",
        "impact_permanent_share",
        "impact_sigma",
        "impact_volume",
        "fill",
        "trades_as_book",
        "l1_remainder",
        "consume_liquidity",
        "queue",
        "balances",
        "exchange_info",
    }
)
FLAG_OF = {
    "fees": "--fees",
    "bnb_fees": "--bnb-fees",
    "latency": "--latency",
    "impact": "--impact",
    "impact_half_life": "--impact-half-life",
    "fill": "--fill",
    "queue": "--queue",
    "balances": "--balance",
    "exchange_info": "--exchange-info",
}
"""Settings with a CLI flag (the rest are TOML-only)."""


# --------------------------------------------------------------------------- the typed choices


class FeesChoice(msgspec.Struct, frozen=True, kw_only=True):
    """``vipN``: Binance's spot VIP table starting at tier N (then tiers follow the 30-day volume);
    ``flat:M,T``: fixed maker/taker bps (negative maker = rebate)."""

    schedule: str  # "tiered" | "flat"
    initial_tier: int = 0
    maker_bps: str = "0"
    taker_bps: str = "0"


class LatencyChoice(msgspec.Struct, frozen=True, kw_only=True):
    model: str  # "zero" | "constant" | "lognormal" | "recorded"
    order_ns: int = 0
    response_ns: int = 0
    mu: float = 0.0
    sigma: float = 0.0
    unit_ns: int = 1_000_000
    trips: tuple[tuple[int, int], ...] = ()
    file_sha256: str = ""


class ImpactChoice(msgspec.Struct, frozen=True, kw_only=True):
    y: float = 0.0
    half_life_ns: int = 60_000_000_000
    window_ns: int = 3_600_000_000_000
    sample_ns: int = 1_000_000_000
    permanent_share: float = 0.5
    sigma: float | None = None
    volume_e8: int | None = None


class FillChoice(msgspec.Struct, frozen=True, kw_only=True):
    mode: str = "auto"  # "auto" | "l1" | "l2" ("auto": l2 when the data has depth, else l1)
    trades_as_book: bool = True
    l1_remainder: str = "slip"
    consume_liquidity: bool = True


class QueueChoice(msgspec.Struct, frozen=True, kw_only=True):
    rule: str = "risk-averse"  # "risk-averse" | "probabilistic"
    f: str = ""  # "power" | "log"
    n: float = 0.0


@dataclass(frozen=True, slots=True)
class VenueSettings:
    """Every venue setting of a run, parsed and validated (see module doc)."""

    fees: FeesChoice = FeesChoice(schedule="tiered")
    bnb_fees: bool = False
    bnb_discount: str = "0.25"
    latency: LatencyChoice = LatencyChoice(model="zero")
    impact: ImpactChoice = ImpactChoice()
    fill: FillChoice = FillChoice()
    queue: QueueChoice = QueueChoice()
    balances: tuple[tuple[str, int], ...] = DEFAULT_BALANCES
    exchange_info: Path | None = None

    def effective(self, symbols: Mapping[InstrumentId, SymbolChoice] | None = None) -> dict[str, Any]:
        """The whole configuration as JSON data (what RunStarted records and the run hash covers).

        Only what takes effect is listed (no L1 keys for an L2 book, no rates for a tier table).
        """
        return {
            "fees": self._fees_json(),
            "latency": self._latency_json(),
            "impact": msgspec.to_builtins(self.impact) if self.impact.y else {"y": 0.0},
            "fill": self._fill_json(),
            "queue": self._queue_json(),
            "balances": {a: format_e8(v) for a, v in self.balances},
            "exchange_info_sha256": _sha256(self.exchange_info) if self.exchange_info is not None else None,
            "symbols": {str(k): v.to_json() for k, v in sorted((symbols or {}).items())},
        }

    def _fees_json(self) -> dict[str, Any]:
        f = self.fees
        out: dict[str, Any] = {
            "schedule": f.schedule,
            "bnb": self.bnb_fees,
            "bnb_discount": self.bnb_discount,
        }
        if f.schedule == "flat":
            return out | {"maker_bps": f.maker_bps, "taker_bps": f.taker_bps}
        return out | {"initial_tier": f.initial_tier, "table": "SPOT_VIP_TIERS"}

    def _latency_json(self) -> dict[str, Any]:
        c = self.latency
        if c.model == "constant":
            return {"model": c.model, "order_ns": c.order_ns, "response_ns": c.response_ns}
        if c.model == "lognormal":
            return {"model": c.model, "mu": c.mu, "sigma": c.sigma, "unit_ns": c.unit_ns, "seed": "run seed"}
        if c.model == "recorded":
            return {"model": c.model, "trips": len(c.trips), "file_sha256": c.file_sha256}
        return {"model": c.model}

    def _fill_json(self) -> dict[str, Any]:
        f = self.fill
        out: dict[str, Any] = {"mode": f.mode, "consume_liquidity": f.consume_liquidity}
        if f.mode == "l1":
            out |= {"trades_as_book": f.trades_as_book, "l1_remainder": f.l1_remainder}
        return out

    def _queue_json(self) -> dict[str, Any]:
        q = self.queue
        if q.rule == "risk-averse":
            return {"rule": q.rule}
        return {"rule": q.rule, "f": q.f} | ({"n": q.n} if q.f == "power" else {})


# --------------------------------------------------------------------------- parsing one value


def _fail(where: str, value: object, why: str) -> ConfigError:
    return ConfigError(f"{where} {value!r}: {why}")


def parse_fees(value: object, where: str = "--fees") -> FeesChoice:
    """``vip0``..``vip9`` or ``flat:MAKER_BPS,TAKER_BPS``."""
    text = _text(value, where).strip().lower()
    m = re.fullmatch(r"vip(\d)", text)
    if m:
        return FeesChoice(schedule="tiered", initial_tier=int(m.group(1)))
    if text.startswith("flat:"):
        parts = text[5:].split(",")
        if len(parts) == 2:
            maker, taker = (_bps(p, where, value) for p in parts)
            if Decimal(taker) < 0:
                raise _fail(where, value, "a negative taker fee is not a fee schedule Binance has")
            return FeesChoice(schedule="flat", maker_bps=maker, taker_bps=taker)
    raise _fail(where, value, "expected vip0..vip9 or flat:MAKER_BPS,TAKER_BPS (e.g. flat:1,1)")


def _bps(text: str, where: str, value: object) -> str:
    try:
        d = Decimal(text.strip())
    except InvalidOperation:
        raise _fail(where, value, f"{text.strip()!r} is not a number of bps") from None
    if (
        not d.is_finite()
        or (d * Decimal("0.0001") * SCALE) != (d * Decimal("0.0001") * SCALE).to_integral_value()
    ):
        raise _fail(where, value, f"{text.strip()} bps is not exact in units of 1e-8")
    return format(d.normalize(), "f")


def parse_latency(value: object, where: str = "--latency", base: Path | None = None) -> LatencyChoice:
    """``zero``, ``const:NS`` (or ``const:ORDER_NS,RESPONSE_NS``; units ns/us/ms/s allowed),
    ``lognormal:MU,SIGMA`` (log-milliseconds: ``lognormal:1.609,0.5`` = 5 ms median) or
    ``recorded:FILE`` (one round trip per line: ``ORDER_NS,RESPONSE_NS``, or a total ``RTT_NS``
    split half/half; ``#`` comments)."""
    text = _text(value, where).strip()
    kind, _, arg = text.partition(":")
    kind = kind.lower()
    if kind == "zero" and not arg:
        return LatencyChoice(model="zero")
    if kind in ("const", "constant") and arg:
        parts = arg.split(",")
        if len(parts) in (1, 2):
            ns = [parse_duration(p, where, whole=value) for p in parts]
            return LatencyChoice(model="constant", order_ns=ns[0], response_ns=ns[-1])
    if kind == "lognormal" and arg:
        parts = arg.split(",")
        if len(parts) == 2:
            mu, sigma = (_float(p, where, value) for p in parts)
            if sigma < 0:
                raise _fail(where, value, "sigma must be >= 0")
            return LatencyChoice(model="lognormal", mu=mu, sigma=sigma)
    if kind == "recorded" and arg:
        path = _path(arg, base)
        trips = read_latency_file(path, where)
        return LatencyChoice(model="recorded", trips=trips, file_sha256=_sha256(path))
    raise _fail(where, value, "expected zero, const:NS[,NS], lognormal:MU,SIGMA or recorded:FILE")


def read_latency_file(path: Path, where: str = "--latency") -> tuple[tuple[int, int], ...]:
    """Round trips of a recorded-latency file; errors name the file and line."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror}") from None
    trips: list[tuple[int, int]] = []
    for lineno, line in enumerate(lines, start=1):
        body = line.split("#", 1)[0].strip()
        if not body:
            continue
        try:
            nums = [int(x) for x in body.split(",")]
        except ValueError:
            raise InputError(
                f"expected ORDER_NS,RESPONSE_NS or RTT_NS, got {body!r}", source=str(path), line=lineno
            ) from None
        if len(nums) not in (1, 2) or min(nums) < 0:
            raise InputError(
                f"expected ORDER_NS,RESPONSE_NS or RTT_NS (>= 0), got {body!r}", source=str(path), line=lineno
            )
        trips.append((nums[0], nums[1]) if len(nums) == 2 else (nums[0] // 2, nums[0] - nums[0] // 2))
    if not trips:
        raise ConfigError(f"{where}: {path} holds no round trip")
    return tuple(trips)


def parse_duration(value: object, where: str, whole: object = None) -> int:
    """``250``, ``250ns``, ``3ms``, ``60s``, ``5m``, ``1h`` -> int ns (a bare number is ns)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise _fail(where, whole if whole is not None else value, "a duration must be >= 0")
        return value
    m = _DURATION.match(_text(value, where))
    if m is None:
        raise _fail(
            where, whole if whole is not None else value, "expected a duration like 250ns, 3ms, 60s, 5m, 1h"
        )
    return int(m.group(1)) * NS_PER_UNIT[m.group(2) or "ns"]


def parse_fill(value: object, where: str = "--fill") -> str:
    text = _text(value, where).strip().lower()
    if text not in ("auto", "l1", "l2"):
        raise _fail(
            where, value, "expected l1 (trades + bookTicker), l2 (depth) or auto (l2 when the data has depth)"
        )
    return text


def parse_queue(value: object, where: str = "--queue") -> QueueChoice:
    """``risk-averse``, ``prob:power:N`` (N > 0) or ``prob:log``."""
    text = _text(value, where).strip().lower()
    if text == "risk-averse":
        return QueueChoice(rule="risk-averse")
    if text == "prob:log":
        return QueueChoice(rule="probabilistic", f="log")
    if text.startswith("prob:power:"):
        n = _float(text[len("prob:power:") :], where, value)
        if n <= 0:
            raise _fail(where, value, "the power must be > 0")
        return QueueChoice(rule="probabilistic", f="power", n=n)
    raise _fail(where, value, "expected risk-averse, prob:power:N or prob:log")


def parse_balance(value: object, where: str = "--balance") -> tuple[str, int]:
    """``ASSET=AMOUNT`` (a decimal with at most 8 places) -> (asset, e8)."""
    asset, eq, amount = _text(value, where).partition("=")
    if not eq:
        raise _fail(where, value, "expected ASSET=AMOUNT, e.g. USDT=1000000")
    return _balance(asset.strip().upper(), amount.strip(), where, value)


def _balance(asset: str, amount: object, where: str, value: object) -> tuple[str, int]:
    if not _ASSET.match(asset):
        raise _fail(where, value, f"{asset!r} is not an asset name")
    try:
        e8 = parse_e8(str(amount))
    except ValueError as exc:
        raise _fail(where, value, f"amount: {exc}") from None
    return asset, e8


def parse_impact(value: object, where: str = "--impact") -> float:
    y = _float(value, where, value)
    if y < 0:
        raise _fail(where, value, "Y must be >= 0 (0 = impact off)")
    return y


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(where, value, "expected a string")
    return value


def _float(value: object, where: str, whole: object) -> float:
    if isinstance(value, bool):
        raise _fail(where, whole, "expected a number")
    try:
        f = float(value.strip() if isinstance(value, str) else value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _fail(where, whole, f"{value!r} is not a number") from None
    if not math.isfinite(f):
        raise _fail(where, whole, "must be finite")
    return f


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(where, value, "expected true or false")
    return value


def _path(text: str, base: Path | None) -> Path:
    p = Path(text).expanduser()
    return p if p.is_absolute() or base is None else base / p


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


# --------------------------------------------------------------------------- file + flags


def load_settings(
    config_file: str | Path | None = None, flags: Mapping[str, Any] | None = None
) -> VenueSettings:
    """The TOML file's settings with the given CLI ``flags`` over them (None/absent = not given).

    ``flags`` keys are the setting names (``fees``, ``bnb_fees``, ``latency``, ``impact``,
    ``impact_half_life``, ``fill``, ``queue``, ``balances`` (a list of ``ASSET=AMOUNT``),
    ``exchange_info``).
    """
    raw: dict[str, tuple[object, str, Path | None]] = {}  # key -> (value, where, base dir)
    if config_file is not None:
        path = Path(config_file)
        for key, value in _read_toml(path).items():
            raw[key] = (value, f"{path}: {key}", path.parent)
    file_balances = raw.pop("balances", None)
    for key, value in (flags or {}).items():
        if key not in FLAG_OF:
            raise ConfigError(f"unknown venue flag {key!r}; known: {', '.join(sorted(FLAG_OF))}")
        if value is not None and key != "balances":
            raw[key] = (value, FLAG_OF[key], None)
    balances = _merge_balances(file_balances, (flags or {}).get("balances"))
    return _settings(raw, balances)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"--venue-config {str(path)!r}: cannot read it: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--venue-config {str(path)!r}: not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - TOML_KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(TOML_KEYS))}"
        )
    return doc


def _merge_balances(
    file_balances: tuple[object, str, Path | None] | None, flag_balances: Sequence[str] | None
) -> tuple[tuple[str, int], ...]:
    out: dict[str, int] = {}
    if file_balances is not None:
        table, where, _ = file_balances
        if not isinstance(table, dict):
            raise _fail(where, table, 'expected a table like [balances] USDT = "1000000"')
        for asset, amount in table.items():
            key = f"{where}.{asset}"
            a, e8 = _balance(
                str(asset).upper(), amount if isinstance(amount, str) else _num_text(amount, key), key, amount
            )
            out[a] = e8
    for item in flag_balances or ():
        asset, e8 = parse_balance(item)
        out[asset] = e8
    return tuple(sorted(out.items())) if out else DEFAULT_BALANCES


def _num_text(value: object, where: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _fail(where, value, 'write amounts as strings ("1000.5") or integers: a TOML float is not exact')


_Raw = Mapping[str, tuple[object, str, Path | None]]
"""setting -> (value, where it came from (flag or ``FILE: key``), base dir of relative paths)."""


def _settings(raw: _Raw, balances: tuple[tuple[str, int], ...]) -> VenueSettings:
    d = VenueSettings()
    get = raw.get
    fees, bnb, discount, latency, queue = d.fees, d.bnb_fees, d.bnb_discount, d.latency, d.queue
    if (item := get("fees")) is not None:
        fees = parse_fees(item[0], item[1])
    if (item := get("bnb_fees")) is not None:
        bnb = _bool(item[0], item[1])
    if (item := get("bnb_discount")) is not None:
        discount = _fraction(item[0], item[1])
    if (item := get("latency")) is not None:
        latency = parse_latency(item[0], item[1], item[2])
    if (item := get("queue")) is not None:
        queue = parse_queue(item[0], item[1])
    exchange_info = None
    if (item := get("exchange_info")) is not None:
        exchange_info = _path(_text(item[0], item[1]), item[2])
        if not exchange_info.is_file():
            raise _fail(item[1], item[0], "no such file")
    return VenueSettings(
        fees=fees,
        bnb_fees=bnb,
        bnb_discount=discount,
        latency=latency,
        impact=_impact_choice(raw),
        fill=_fill_choice(raw),
        queue=queue,
        balances=balances,
        exchange_info=exchange_info,
    )


def _fraction(value: object, where: str) -> str:
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise _fail(where, value, "expected a fraction like 0.25") from None
    if not d.is_finite() or not 0 <= d <= 1 or d * SCALE != (d * SCALE).to_integral_value():
        raise _fail(where, value, "expected a fraction within 0..1 with at most 8 decimals")
    return format(d.normalize(), "f")


def _impact_choice(raw: _Raw) -> ImpactChoice:
    get = raw.get
    d = ImpactChoice()
    kw: dict[str, Any] = {}
    if (item := get("impact")) is not None:
        kw["y"] = parse_impact(item[0], item[1])
    for key, field in (
        ("impact_half_life", "half_life_ns"),
        ("impact_window", "window_ns"),
        ("impact_sample", "sample_ns"),
    ):
        if (item := get(key)) is not None:
            kw[field] = parse_duration(item[0], item[1])
            if kw[field] <= 0:
                raise _fail(item[1], item[0], "must be > 0")
    if (item := get("impact_permanent_share")) is not None:
        share = _float(item[0], item[1], item[0])
        if not 0.0 <= share <= 1.0:
            raise _fail(item[1], item[0], "must be within 0..1")
        kw["permanent_share"] = share
    if (item := get("impact_sigma")) is not None:
        sigma = _float(item[0], item[1], item[0])
        if sigma < 0:
            raise _fail(item[1], item[0], "must be >= 0")
        kw["sigma"] = sigma
    if (item := get("impact_volume")) is not None:
        kw["volume_e8"] = _balance("V", _text(item[0], item[1]), item[1], item[0])[1]
    choice = msgspec.structs.replace(d, **kw)
    if (choice.sigma is None) != (choice.volume_e8 is None):
        raise ConfigError(
            "impact_sigma and impact_volume go together (both given: fixed statistics; neither: rolling)"
        )
    if choice.sample_ns > choice.window_ns:
        raise ConfigError(
            f"impact_sample ({choice.sample_ns} ns) must not exceed impact_window ({choice.window_ns} ns)"
        )
    return choice


def _fill_choice(raw: _Raw) -> FillChoice:
    get = raw.get
    kw: dict[str, Any] = {}
    if (item := get("fill")) is not None:
        kw["mode"] = parse_fill(item[0], item[1])
    for key in ("trades_as_book", "consume_liquidity"):
        if (item := get(key)) is not None:
            kw[key] = _bool(item[0], item[1])
    if (item := get("l1_remainder")) is not None:
        text = _text(item[0], item[1]).strip().lower()
        if text not in ("slip", "expire"):
            raise _fail(item[1], item[0], "expected slip or expire")
        kw["l1_remainder"] = text
    return FillChoice(**kw)


# --------------------------------------------------------------------------- symbols


class SymbolChoice(msgspec.Struct, frozen=True):
    """Where one instrument's rules came from, and the spec built from them."""

    source: str  # "exchange-info" | "log" | "default"
    raw: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rules": self.source}
        if self.source == "default":
            out["symbol"] = self.raw  # derived from the data: the whole of it is configuration
        else:
            out["sha256"] = hashlib.sha256(_canonical(self.raw).encode()).hexdigest()
        return out

    def spec(self, market: Market) -> SymbolSpec:
        where = "default spec" if self.source == "default" else self.source
        try:
            rules = symbol_rules(self.raw, source=where)
        except InputError as exc:
            raise ConfigError(f"rules of {self.raw.get('symbol')!r} ({where}): {exc}") from None
        return SymbolSpec.from_rules(rules, self.raw, market)


def _canonical(obj: Any) -> str:
    import json

    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def split_symbol(symbol: str) -> tuple[str, str]:
    """``BTCUSDT`` -> (BTC, USDT) by the longest known quote suffix; ConfigError when none fits."""
    for quote in sorted(KNOWN_QUOTES, key=len, reverse=True):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    raise ConfigError(
        f"cannot tell the base and quote assets of {symbol!r} without exchangeInfo; pass --exchange-info FILE"
    )


def default_symbol_dict(symbol: str, tick_e8: int, step_e8: int) -> dict[str, Any]:
    """The permissive default: an exchangeInfo entry with every order type and only PRICE_FILTER
    (``tickSize`` = the data's price grid) and LOT_SIZE (``stepSize`` = the data's quantity grid),
    minimum one tick/step, maxima far beyond real values; no notional, percent-price or count filters."""
    base, quote = split_symbol(symbol)
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": [
            "LIMIT",
            "LIMIT_MAKER",
            "MARKET",
            "STOP_LOSS",
            "STOP_LOSS_LIMIT",
            "TAKE_PROFIT",
            "TAKE_PROFIT_LIMIT",
        ],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": format_e8(tick_e8),
                "maxPrice": format_e8(MAX_PRICE_E8),
                "tickSize": format_e8(tick_e8),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": format_e8(step_e8),
                "maxQty": format_e8(MAX_QTY_E8),
                "stepSize": format_e8(step_e8),
            },
        ],
    }


def grid_of(gcd_e8: int) -> int:
    """The largest power of ten (1e-8 .. 1) dividing ``gcd_e8``: the data's decimal grid (1 when no data)."""
    if gcd_e8 <= 0:
        return 1
    grid = 1
    while grid < SCALE and gcd_e8 % (grid * 10) == 0:
        grid *= 10
    return grid


@dataclass(slots=True)
class LogFacts:
    """What :func:`scan_log` saw: per instrument, the gcd of prices and of quantities, and the
    first exchangeInfo entry (``InstrumentUpdated``)."""

    price_gcd: dict[str, int]
    qty_gcd: dict[str, int]
    instrument_raw: dict[str, dict[str, Any]]
    has_depth: bool = False
    """Any depth diff or snapshot in the data (``--fill auto`` picks l2 then)."""

    def instruments(self) -> list[str]:
        return sorted(set(self.price_gcd) | set(self.qty_gcd) | set(self.instrument_raw))


def scan_log(batches: Iterable[ColumnBatch]) -> LogFacts:
    """One vectorised pass over the log's columns (no event objects except InstrumentUpdated rows)."""
    import numpy as np

    from catalogs.schema import iter_events
    from replay.source import take_rows

    facts = LogFacts({}, {}, {})
    inst_kind = int(Kind.INSTRUMENT)
    depth_kinds = np.array([int(Kind.BOOK_DELTA), int(Kind.BOOK_SNAPSHOT)], dtype=np.uint8)
    for b in batches:
        ints = b.ints
        if not facts.has_depth and bool(np.isin(b.kind, depth_kinds).any()):
            facts.has_depth = True
        price_g = np.gcd(np.gcd(ints["price"], ints["bid_price"]), ints["ask_price"])
        qty_g = np.gcd(np.gcd(ints["qty"], ints["bid_qty"]), ints["ask_qty"])
        codes = b.instrument
        _fold(facts.price_gcd, b.instrument_dict, codes, price_g)
        _fold(facts.qty_gcd, b.instrument_dict, codes, qty_g)
        for offsets, values in ((b.bids_offsets, b.bids_values), (b.asks_offsets, b.asks_values)):
            if len(values):
                pairs = (offsets[1:] - offsets[:-1]) // 2
                level_codes = np.repeat(codes, pairs)
                _fold(facts.price_gcd, b.instrument_dict, level_codes, values[0::2])
                _fold(facts.qty_gcd, b.instrument_dict, level_codes, values[1::2])
        rows = np.flatnonzero(b.kind == inst_kind)
        if len(rows):
            for ev in iter_events(take_rows(b, rows)):
                if isinstance(ev, InstrumentUpdated) and ev.instrument not in facts.instrument_raw:
                    facts.instrument_raw[ev.instrument] = _json_dict(ev.raw, ev.instrument)
    return facts


def _fold(acc: dict[str, int], names: Sequence[str], codes: Any, values: Any) -> None:
    import numpy as np

    if not len(values):
        return
    first = int(codes[0])
    if bool((codes == first).all()):
        groups: Iterator[tuple[int, Any]] = iter(((first, values),))
    else:
        groups = ((int(c), values[codes == c]) for c in np.unique(codes).tolist())
    for code, vals in groups:
        g = int(np.gcd.reduce(np.abs(vals))) if len(vals) else 0
        name = names[code]
        acc[name] = math.gcd(acc.get(name, 0), g)


def _json_dict(raw: str, where: str) -> dict[str, Any]:
    import json

    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(f"InstrumentUpdated of {where}: malformed JSON: {exc.msg}") from None
    if not isinstance(doc, dict):
        raise InputError(f"InstrumentUpdated of {where}: not a JSON object")
    return doc


def exchange_info_symbols(path: Path) -> dict[InstrumentId, dict[str, Any]]:
    """Every symbol entry of an exchangeInfo file (REST body or cryptofeed recording), by instrument id."""
    from catalogs.importers.common import BadRecord
    from catalogs.importers.exchange_info import exchange_info_documents, read_body
    from engine.identifiers import instrument_id

    out: dict[InstrumentId, dict[str, Any]] = {}
    try:
        for line, doc, _, url_market in exchange_info_documents(path):
            try:
                body = read_body(doc, market=url_market)
            except BadRecord as exc:
                raise exc.at(str(path), line) from None
            for sym in body.symbols:
                if isinstance(sym, dict) and isinstance(sym.get("symbol"), str):
                    out.setdefault(instrument_id(sym["symbol"], body.market), sym)
    except BadRecord as exc:
        raise InputError(str(exc), source=str(path)) from None
    return out


def resolve_symbols(
    settings: VenueSettings, reader: LogReader, symbol: str | None = None
) -> dict[InstrumentId, SymbolChoice]:
    """Rules for every spot instrument of the (optionally symbol-filtered) log, by precedence:
    ``--exchange-info`` > the log's first InstrumentUpdated > the default spec from the data."""
    return resolve_venue(settings, reader, symbol)[1]


def resolve_venue(
    settings: VenueSettings, reader: LogReader, symbol: str | None = None
) -> tuple[VenueSettings, dict[InstrumentId, SymbolChoice]]:
    """What the data decides: the symbols' rules (see :func:`resolve_symbols`) and ``--fill auto``
    (l2 when the replayed data has depth diffs or snapshots, else l1). One pass over the log."""
    from replay.source import log_chunks

    facts = scan_log(chunk.batch for chunk in log_chunks(reader, symbol=symbol))
    return with_fill_resolved(settings, facts.has_depth), symbols_from_facts(settings, facts)


def with_fill_resolved(settings: VenueSettings, has_depth: bool) -> VenueSettings:
    """``fill.mode`` "auto" made concrete (the effective config records l1 or l2, never auto)."""
    if settings.fill.mode != "auto":
        return settings
    fill = msgspec.structs.replace(settings.fill, mode="l2" if has_depth else "l1")
    return dataclasses.replace(settings, fill=fill)


def symbols_from_facts(settings: VenueSettings, facts: LogFacts) -> dict[InstrumentId, SymbolChoice]:
    given = exchange_info_symbols(settings.exchange_info) if settings.exchange_info is not None else {}
    out: dict[InstrumentId, SymbolChoice] = {}
    for name in facts.instruments():
        iid = InstrumentId(name)
        try:
            sym, market = split_instrument_id(iid)
        except ValueError:
            continue
        if market is not Market.SPOT:
            continue  # the simulated venue is a spot venue: futures instruments get no spec
        if iid in given:
            out[iid] = SymbolChoice("exchange-info", given[iid])
        elif name in facts.instrument_raw:
            out[iid] = SymbolChoice("log", facts.instrument_raw[name])
        else:
            tick = grid_of(facts.price_gcd.get(name, 0))
            step = grid_of(facts.qty_gcd.get(name, 0))
            out[iid] = SymbolChoice("default", default_symbol_dict(sym, tick, step))
    return out


# --------------------------------------------------------------------------- building


@dataclass(frozen=True, slots=True)
class VenueBundle:
    """The built venue and the kernel's latency model."""

    venue: SimVenue
    latency: LatencyModel
    fees: VenueFees


def build_venue(
    settings: VenueSettings, symbols: Mapping[InstrumentId, SymbolChoice], seed: int = 0
) -> VenueBundle:
    """A SimVenue for these settings and symbols, and the latency model (seeded from ``seed``)."""
    specs = [choice.spec(split_instrument_id(iid)[1]) for iid, choice in sorted(symbols.items())]
    fees = VenueFees(_fee_model(settings), pay_in_bnb=settings.bnb_fees)
    fill = settings.fill
    l1 = fill.mode == "l1"  # ("auto" not resolved against data: l2, the venue's own default)
    config = SimConfig(
        consume_liquidity=fill.consume_liquidity,
        use_depth=not l1,
        trades_as_book=l1 and fill.trades_as_book,
        l1_remainder=fill.l1_remainder,
    )
    venue = SimVenue(
        specs,
        dict(settings.balances),
        config=config,
        fee_model=fees,
        queue_model=_queue_rule(settings.queue),
        impact=_impact_model(settings.impact),
    )
    fees.bind(venue)
    return VenueBundle(venue, _latency_model(settings.latency, seed), fees)


def _fee_model(settings: VenueSettings) -> Any:
    from venues.sim.models.fees import FlatFees, TieredFees

    f = settings.fees
    if f.schedule == "flat":
        return FlatFees(f.maker_bps, f.taker_bps, bnb_discount=settings.bnb_discount)
    bnb = dict(settings.balances).get("BNB", 0)
    return TieredFees(initial_tier=f.initial_tier, bnb_discount=settings.bnb_discount, initial_bnb_e8=bnb)


def _queue_rule(q: QueueChoice) -> QueueModel:
    if q.rule == "risk-averse":
        return RiskAverseQueue()
    from venues.sim.models.queue import ProbabilisticQueueRule, log_queue_fn, power_queue_fn

    return ProbabilisticQueueRule(log_queue_fn if q.f == "log" else power_queue_fn(q.n))


def _impact_model(c: ImpactChoice) -> Any:
    if c.y == 0.0:
        return None  # off: the plain book walk, exactly
    from venues.sim.models.impact import FixedStats, RollingStats, SquareRootImpact

    stats: Any = (
        FixedStats(c.sigma, c.volume_e8)
        if c.sigma is not None and c.volume_e8 is not None
        else RollingStats(c.window_ns, c.sample_ns)
    )
    return SquareRootImpact(c.y, stats, permanent_share=c.permanent_share, half_life_ns=c.half_life_ns)


def _latency_model(c: LatencyChoice, seed: int) -> LatencyModel:
    from venues.sim.models.latency import ConstantLatency, LogNormalLatency, RecordedLatency

    if c.model == "zero":
        return ZeroLatency()
    if c.model == "constant":
        return ConstantLatency(c.order_ns, c.response_ns)
    if c.model == "lognormal":
        return LogNormalLatency(c.mu, c.sigma, seed=derived_seed(seed, "latency"), unit_ns=c.unit_ns)
    return RecordedLatency(c.trips)


def derived_seed(seed: int, purpose: str) -> int:
    """A 64-bit seed for one purpose, from the run seed (stable across processes and platforms)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{purpose}".encode()).digest()[:8], "little")


# --------------------------------------------------------------------------- risk


RISK_TOML_TABLE = "risk"
"""A ``--risk FILE`` may hold its keys at the top level or under a ``[risk]`` table."""


def load_risk_params(config_file: str | Path | None = None, pairs: Sequence[str] = ()) -> dict[str, Any]:
    """The risk parameters of a run: ``--risk FILE`` (TOML), then ``--risk-param K=V`` over it.

    Values stay in the file's human units (``max_order_notional = "1000"``);
    :func:`engine.risk.config.load_risk_config` converts and validates them. A key given
    twice on the command line, or a malformed pair, is a ConfigError naming it.
    """
    from engine.strategy import split_params

    params: dict[str, Any] = {}
    if config_file is not None:
        path = Path(config_file)
        try:
            with path.open("rb") as f:
                doc = tomllib.load(f)
        except OSError as exc:
            raise ConfigError(f"--risk {str(path)!r}: cannot read it: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"--risk {str(path)!r}: not valid TOML: {exc}") from None
        table = doc.get(RISK_TOML_TABLE, doc)
        if not isinstance(table, dict) or (table is not doc and len(doc) != 1):
            raise ConfigError(f"--risk {str(path)!r}: put every key at the top level or all under one [risk] table")
        params.update(table)
    try:
        params.update(split_params(pairs))
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("--param", "--risk-param")) from None
    return params


@dataclass(frozen=True, slots=True)
class RiskSetup:
    """The risk engine's config for one run, the positions it starts with, and its effective JSON."""

    config: Any  # engine.risk.RiskConfig
    quote_asset: str
    positions: tuple[tuple[InstrumentId, int], ...]

    def effective(self) -> dict[str, Any]:
        """What RunStarted records (so the run hash covers it): every field, e8 ints, plus the derivations."""
        out: dict[str, Any] = {"engine": "engine.risk", "quote_asset": self.quote_asset}
        out.update(msgspec.to_builtins(self.config))
        out["initial_positions"] = {str(i): q for i, q in self.positions}
        return out


def resolve_risk(
    params: Mapping[str, Any], settings: VenueSettings, symbols: Mapping[InstrumentId, SymbolChoice]
) -> RiskSetup:
    """The run's risk config: ``params`` (human units), with the defaults a backtest needs.

    Risk is always in the path. Without ``starting_equity`` it is the venue's initial
    balance of the symbols' quote asset (the most common one when they differ, ties by
    name: one engine values everything in one asset); every limit stays off unless
    configured. A base-asset balance becomes risk's starting position in the first
    instrument (sorted) with that base and that quote asset, so risk and the venue agree
    on what is held.
    """
    from engine.risk.config import load_risk_config

    pairs = [(iid, _assets_of(iid, c)) for iid, c in sorted(symbols.items())]
    count: dict[str, int] = {}
    for _, (_, q) in pairs:
        count[q] = count.get(q, 0) + 1
    quote = min(count, key=lambda q: (-count[q], q)) if count else ""
    balances = dict(settings.balances)
    values = dict(params)
    if "starting_equity" not in values:
        values["starting_equity"] = format_e8(balances.get(quote, 0))
    config = load_risk_config(values)
    positions: dict[str, tuple[InstrumentId, int]] = {}
    for iid, (base, q) in pairs:
        if q == quote and balances.get(base) and base not in positions:
            positions[base] = (iid, balances[base])
    return RiskSetup(config, quote, tuple(sorted(positions.values())))


def _assets_of(iid: InstrumentId, choice: SymbolChoice) -> tuple[str, str]:
    base, quote = choice.raw.get("baseAsset"), choice.raw.get("quoteAsset")
    if isinstance(base, str) and isinstance(quote, str):
        return base, quote
    return split_symbol(split_instrument_id(iid)[0])
