"""Importers: third-party Binance recordings -> tickloop event logs.

Sans-I/O parsers (lines, CSV rows or JSON values in; ``engine.events`` out, ``seq=0``)
plus one thin driver (:mod:`.driver`) that streams files into a ``catalogs.log.LogWriter``.
Nothing here needs pyarrow: the edge profile can import recordings too.

Sources: raw combined-stream recordings (hftbacktest, cryptofeed), exchangeInfo, REST
bodies, data.binance.vision CSVs, Tardis.dev CSVs, nautilus depth CSVs, freqtrade JSON.
"""

from __future__ import annotations

from .binance_rest import RestContext, classify, item_events, rest_events
from .binance_stream import BinanceStreamParser, StreamHints, sniff
from .common import BadRecord
from .csv_sources import DepthCsvParser, TardisParser, VisionParser, vision_name_info
from .driver import (
    ImportReport,
    SkippedRecord,
    SourceInfo,
    import_binance_rest,
    import_binance_stream,
    import_depth_csv,
    import_exchange_info,
    import_freqtrade,
    import_tardis,
    import_vision,
)
from .exchange_info import exchange_info_events, load_exchange_info, market_of_exchange_info
from .freqtrade import FreqtradeRows, freqtrade_name_info

__all__ = [
    "BadRecord",
    "BinanceStreamParser",
    "DepthCsvParser",
    "FreqtradeRows",
    "ImportReport",
    "RestContext",
    "SkippedRecord",
    "SourceInfo",
    "StreamHints",
    "TardisParser",
    "VisionParser",
    "classify",
    "exchange_info_events",
    "freqtrade_name_info",
    "import_binance_rest",
    "import_binance_stream",
    "import_depth_csv",
    "import_exchange_info",
    "import_freqtrade",
    "import_tardis",
    "import_vision",
    "item_events",
    "load_exchange_info",
    "market_of_exchange_info",
    "rest_events",
    "sniff",
    "vision_name_info",
]
