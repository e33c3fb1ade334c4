"""Venue settings: each flag's syntax, the TOML file under the flags, symbol rules, the built models."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from catalogs.log import LogWriter
from engine.errors import ConfigError, InputError
from engine.events import BookSnapshotReceived, Event, InstrumentUpdated, QuoteReceived, TradeReceived
from engine.fixed import SCALE
from engine.identifiers import InstrumentId, Market
from engine.ports import ZeroLatency
from replay.backtest import canonical_json
from replay.source import open_log
from replay.venue_config import (
    DEFAULT_BALANCES,
    FeesChoice,
    LatencyChoice,
    QueueChoice,
    SymbolChoice,
    VenueSettings,
    build_venue,
    default_symbol_dict,
    derived_seed,
    grid_of,
    load_settings,
    parse_balance,
    parse_duration,
    parse_fees,
    parse_fill,
    parse_latency,
    parse_queue,
    resolve_symbols,
    resolve_venue,
    split_symbol,
)
from venues.sim.filters import symbol_rules
from venues.sim.matching import RiskAverseQueue
from venues.sim.models.fees import FlatFees, TieredFees
from venues.sim.models.impact import RollingStats, SquareRootImpact
from venues.sim.models.latency import ConstantLatency, LogNormalLatency, RecordedLatency
from venues.sim.models.queue import ProbabilisticQueueRule

pytestmark = pytest.mark.edge

E8 = SCALE
BTC = InstrumentId("BTCUSDT.SPOT")
ETH = InstrumentId("ETHBTC.SPOT")


# --------------------------------------------------------------------------- one value at a time


@pytest.mark.parametrize("n", range(10))
def test_vip_tiers(n: int) -> None:
    assert parse_fees(f"vip{n}") == FeesChoice(schedule="tiered", initial_tier=n)
    assert parse_fees(f"VIP{n}") == FeesChoice(schedule="tiered", initial_tier=n)


def test_flat_fees_and_rebates() -> None:
    assert parse_fees("flat:1,1") == FeesChoice(schedule="flat", maker_bps="1", taker_bps="1")
    assert parse_fees("flat:-0.25, 4.50") == FeesChoice(schedule="flat", maker_bps="-0.25", taker_bps="4.5")


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("vip10", "vip0..vip9"),
        ("gold", "vip0..vip9"),
        ("flat:1", "flat:MAKER_BPS,TAKER_BPS"),
        ("flat:a,1", "'a' is not a number"),
        ("flat:1,-1", "negative taker"),
        ("flat:0.000001,1", "not exact"),
    ],
)
def test_bad_fees_name_the_flag_and_the_value(value: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_fees(value)
    assert str(err.value).startswith(f"--fees {value!r}: ") and needle in str(err.value)


def test_latency_specs(tmp_path: Path) -> None:
    assert parse_latency("zero") == LatencyChoice(model="zero")
    assert parse_latency("const:250") == LatencyChoice(model="constant", order_ns=250, response_ns=250)
    assert parse_latency("const:3ms,1ms") == LatencyChoice(
        model="constant", order_ns=3_000_000, response_ns=1_000_000
    )
    assert parse_latency("lognormal:1.6,0.5") == LatencyChoice(model="lognormal", mu=1.6, sigma=0.5)
    f = tmp_path / "rtt.txt"
    f.write_text("# order,response ns\n100,200\n\n301   # a total round trip, split half/half\n")
    got = parse_latency(f"recorded:{f}")
    assert got.model == "recorded" and got.trips == ((100, 200), (150, 151)) and len(got.file_sha256) == 64


@pytest.mark.parametrize(
    "value",
    [
        "",
        "const",
        "const:",
        "const:-5",
        "const:5xs",
        "const:1,2,3",
        "lognormal:1",
        "lognormal:1,-1",
        "lognormal:x,1",
        "recorded:",
        "uniform:1,2",
    ],
)
def test_bad_latency_names_the_flag_and_the_value(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^--latency "):
        parse_latency(value)


def test_recorded_latency_file_errors_are_located(tmp_path: Path) -> None:
    f = tmp_path / "rtt.txt"
    f.write_text("100,200\n7,x\n")
    with pytest.raises(InputError) as err:
        parse_latency(f"recorded:{f}")
    assert str(err.value).startswith(f"{f}:2: ")
    with pytest.raises(ConfigError, match="cannot read"):
        parse_latency(f"recorded:{tmp_path / 'nope.txt'}")
    f.write_text("# nothing\n")
    with pytest.raises(ConfigError, match="no round trip"):
        parse_latency(f"recorded:{f}")


def test_durations() -> None:
    assert [parse_duration(v, "--x") for v in ("7", "7ns", "7us", "7ms", "7s", "7m", "7h", 7)] == [
        7,
        7,
        7_000,
        7_000_000,
        7 * 10**9,
        420 * 10**9,
        7 * 3600 * 10**9,
        7,
    ]
    for bad in ("7d", "-1", "1.5s", "", -3):
        with pytest.raises(ConfigError, match=r"^--x "):
            parse_duration(bad, "--x")


def test_queue_fill_and_balance_specs() -> None:
    assert parse_queue("risk-averse") == QueueChoice()
    assert parse_queue("prob:power:3") == QueueChoice(rule="probabilistic", f="power", n=3.0)
    assert parse_queue("prob:log") == QueueChoice(rule="probabilistic", f="log")
    for bad in ("prob:power:0", "prob:power:x", "prob", "fifo"):
        with pytest.raises(ConfigError, match=r"^--queue "):
            parse_queue(bad)
    assert (parse_fill("L1"), parse_fill("l2"), parse_fill("auto")) == ("l1", "l2", "auto")
    with pytest.raises(ConfigError, match=r"^--fill 'l3': "):
        parse_fill("l3")
    assert parse_balance("usdt=1000.5") == ("USDT", 1000 * E8 + E8 // 2)
    for bad in ("USDT", "USDT=", "USDT=-1", "USDT=1.123456789", "US DT=1", "=5"):
        with pytest.raises(ConfigError, match=r"^--balance "):
            parse_balance(bad)


# --------------------------------------------------------------------------- file and flags


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "venue.toml"
    path.write_text(text)
    return path


def test_defaults() -> None:
    s = load_settings()
    assert s == VenueSettings()
    assert s.balances == DEFAULT_BALANCES == (("USDT", 1_000_000 * E8),)
    assert (s.fees.schedule, s.fees.initial_tier, s.latency.model, s.impact.y, s.fill.mode) == (
        "tiered",
        0,
        "zero",
        0.0,
        "auto",
    )


def test_flags_override_the_file_and_balances_merge_per_asset(tmp_path: Path) -> None:
    (tmp_path / "lat.txt").write_text("10,20\n")
    path = write_toml(
        tmp_path,
        'fees = "vip2"\nlatency = "recorded:lat.txt"\nimpact = 0.5\nimpact_half_life = "30s"\n'
        'impact_window = "10m"\nfill = "l1"\nl1_remainder = "expire"\nqueue = "prob:log"\n'
        'bnb_discount = "0.1"\n[balances]\nUSDT = "5000"\nBTC = 2\n',
    )
    s = load_settings(path, {"fees": "flat:1,2", "balances": ["USDT=7"], "impact": None})
    assert s.fees == FeesChoice(schedule="flat", maker_bps="1", taker_bps="2")  # the flag won
    assert s.latency.trips == ((10, 20),)  # relative to the TOML file
    assert (s.impact.y, s.impact.half_life_ns, s.impact.window_ns) == (0.5, 30 * 10**9, 600 * 10**9)
    assert (s.fill.mode, s.fill.l1_remainder, s.queue.f, s.bnb_discount) == ("l1", "expire", "log", "0.1")
    assert s.balances == (("BTC", 2 * E8), ("USDT", 7 * E8))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('fees = "vip11"\n', "venue.toml: fees 'vip11': "),
        ("impact = -1\n", "venue.toml: impact -1: "),
        ("latency = 5\n", "venue.toml: latency 5: expected a string"),
        ("trades_as_book = 1\n", "venue.toml: trades_as_book 1: expected true or false"),
        ("[balances]\nUSDT = 1.5\n", "venue.toml: balances.USDT 1.5: "),
        ("impact_sigma = 0.01\n", "impact_sigma and impact_volume go together"),
        ('impact_sample = "2h"\n', "must not exceed impact_window"),
        ('bnb_discount = "1.5"\n', "venue.toml: bnb_discount '1.5': "),
        ('exchange_info = "nope.json"\n', "venue.toml: exchange_info 'nope.json': no such file"),
        ('fee = "vip1"\n', "unknown key(s) fee"),
        ("fees = \n", "not valid TOML"),
    ],
)
def test_bad_file_values_name_the_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write_toml(tmp_path, text))
    assert needle in str(err.value)


def test_unknown_flag_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown venue flag 'speed'"):
        load_settings(None, {"speed": "fast"})
    with pytest.raises(ConfigError, match="cannot read it"):
        load_settings(tmp_path / "absent.toml")


def test_effective_config_is_json_and_lists_what_takes_effect(tmp_path: Path) -> None:
    l2 = load_settings(None, {"fees": "vip1", "fill": "l2"}).effective()
    assert l2["fill"] == {"mode": "l2", "consume_liquidity": True}
    assert l2["fees"] == {
        "schedule": "tiered",
        "initial_tier": 1,
        "table": "SPOT_VIP_TIERS",
        "bnb": False,
        "bnb_discount": "0.25",
    }
    l1 = load_settings(
        None, {"fill": "l1", "latency": "lognormal:1,0.5", "queue": "prob:power:2"}
    ).effective()
    assert l1["fill"] == {
        "mode": "l1",
        "consume_liquidity": True,
        "trades_as_book": True,
        "l1_remainder": "slip",
    }
    assert l1["latency"]["model"] == "lognormal" and l1["queue"] == {
        "rule": "probabilistic",
        "f": "power",
        "n": 2.0,
    }
    assert json.loads(canonical_json(l1)) == l1
    # a file enters by content, not by path
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text('{"symbols": []}')
    b.write_text('{"symbols": []}')
    assert (
        load_settings(None, {"exchange_info": str(a)}).effective()
        == load_settings(None, {"exchange_info": str(b)}).effective()
    )


# --------------------------------------------------------------------------- symbols


def test_symbol_split_and_data_grid() -> None:
    assert split_symbol("BTCUSDT") == ("BTC", "USDT")
    assert split_symbol("ETHBTC") == ("ETH", "BTC")
    assert split_symbol("BTCFDUSD") == ("BTC", "FDUSD")
    with pytest.raises(ConfigError, match="--exchange-info"):
        split_symbol("FOOBAR")
    assert [grid_of(g) for g in (0, 1, 10, 1_000_000, 3_000_000, 10**8, 10**10)] == [
        1,
        1,
        10,
        1_000_000,
        1_000_000,
        10**8,
        10**8,
    ]


def test_default_spec_is_permissive_and_parses() -> None:
    raw = default_symbol_dict("BTCUSDT", 1_000_000, 1_000)
    rules = symbol_rules(raw)
    assert (rules.tick_size, rules.step_size, rules.base_asset, rules.quote_asset) == (
        1_000_000,
        1_000,
        "BTC",
        "USDT",
    )
    assert [f.name for f in rules.filters] == ["PRICE_FILTER", "LOT_SIZE"]
    spec = SymbolChoice("default", raw).spec(Market.SPOT)
    assert spec.instrument == BTC and spec.market_step == 1_000


def _log(tmp_path: Path, events: Sequence[Event]) -> Path:
    path = tmp_path / "log"
    with LogWriter(path, monotonic_ns=None) as w:
        w.extend(events)
    return path


def test_symbols_come_from_exchange_info_then_the_log_then_the_data(tmp_path: Path) -> None:
    eth_raw = default_symbol_dict("ETHBTC", 100, 10**5) | {"filters": []}
    events = [
        InstrumentUpdated(0, 1, 1, ETH, json.dumps(eth_raw)),
        TradeReceived(0, 2, 2, BTC, 6_000_012_000_000, 123_000, 1, False),
        QuoteReceived(0, 3, 3, BTC, 1, 6_000_000_000_000, 5_000_000, 6_000_100_000_000, 40_000),
        TradeReceived(0, 4, 4, ETH, 5_000_000, 10**7, 2, True),
        TradeReceived(0, 5, 5, InstrumentId("BTCUSDT.USDM"), 6 * 10**12, 10**8, 3, True),
    ]
    log = _log(tmp_path, events)
    with open_log(log) as reader:
        got = resolve_symbols(VenueSettings(), reader)
    assert sorted(got) == [BTC, ETH]  # the futures instrument gets no spot spec
    assert got[ETH].source == "log" and got[ETH].raw == eth_raw
    btc = got[BTC]
    assert btc.source == "default"
    rules = symbol_rules(btc.raw)
    assert (rules.tick_size, rules.step_size) == (1_000_000, 1_000)  # 0.01 and 0.00001 from the data
    info = tmp_path / "info.json"
    info.write_text(json.dumps({"serverTime": 1, "symbols": [default_symbol_dict("BTCUSDT", 10**7, 10**5)]}))
    with open_log(log) as reader:
        got = resolve_symbols(VenueSettings(exchange_info=info), reader)
    assert got[BTC].source == "exchange-info" and symbol_rules(got[BTC].raw).tick_size == 10**7
    with open_log(log) as reader:
        assert sorted(resolve_symbols(VenueSettings(), reader, "ETHBTC")) == [ETH]


def test_fill_auto_is_l2_with_depth_in_the_data_else_l1(tmp_path: Path) -> None:
    trades = [TradeReceived(0, 1, 1, BTC, 6 * 10**12, 10**5, 1, False)]
    depth = [BookSnapshotReceived(0, 2, 2, BTC, 9, ((6 * 10**12, E8),), ((6 * 10**12 + 10**6, E8),))]
    for events, mode in ((trades, "l1"), (trades + depth, "l2")):
        log = _log(tmp_path / mode, events)
        with open_log(log) as reader:
            settings, _ = resolve_venue(VenueSettings(), reader)
        assert settings.fill.mode == mode and settings.effective()["fill"]["mode"] == mode
        with open_log(log) as reader:
            forced, _ = resolve_venue(load_settings(None, {"fill": "l2"}), reader)
        assert forced.fill.mode == "l2"  # an explicit choice stands


# --------------------------------------------------------------------------- built models


def test_built_models_match_the_settings(tmp_path: Path) -> None:
    syms = {BTC: SymbolChoice("default", default_symbol_dict("BTCUSDT", 10**6, 10**3))}
    plain = build_venue(VenueSettings(), syms)
    assert isinstance(plain.latency, ZeroLatency) and plain.venue.impact is None
    assert isinstance(plain.fees.model, TieredFees) and plain.fees.model.tier_level == 0
    assert isinstance(plain.venue.queue, RiskAverseQueue)
    assert plain.venue.config.use_depth and not plain.venue.config.trades_as_book
    assert plain.venue.balances() == {"USDT": (1_000_000 * E8, 0)}
    s = load_settings(
        None,
        {
            "fees": "flat:-1,3",
            "latency": "lognormal:1.6,0.5",
            "impact": "0.7",
            "fill": "l1",
            "queue": "prob:power:2",
        },
    )
    b = build_venue(s, syms, seed=4)
    assert isinstance(b.fees.model, FlatFees) and b.fees.model.rates_e8(0) == (-10_000, 30_000)
    assert isinstance(b.latency, LogNormalLatency)
    assert isinstance(b.venue.impact, SquareRootImpact) and isinstance(b.venue.impact.stats, RollingStats)
    assert b.venue.impact.y == 0.7
    assert isinstance(b.venue.queue, ProbabilisticQueueRule)
    assert not b.venue.config.use_depth and b.venue.config.trades_as_book
    # the log-normal draws are a function of the run seed only
    again = build_venue(s, syms, seed=4).latency
    other = build_venue(s, syms, seed=5).latency
    draws = [b.latency.order_latency_ns(0) for _ in range(5)]
    assert draws == [again.order_latency_ns(0) for _ in range(5)]
    assert draws != [other.order_latency_ns(0) for _ in range(5)]
    assert derived_seed(4, "latency") == derived_seed(4, "latency") != derived_seed(4, "other")
    c = build_venue(load_settings(None, {"latency": "const:5ms"}), syms).latency
    assert isinstance(c, ConstantLatency) and c.order_latency_ns(0) == 5_000_000
    f = tmp_path / "rtt.txt"
    f.write_text("1,2\n3,4\n")
    r = build_venue(load_settings(None, {"latency": f"recorded:{f}"}), syms).latency
    assert isinstance(r, RecordedLatency) and [r.order_latency_ns(0) for _ in range(3)] == [1, 3, 1]
