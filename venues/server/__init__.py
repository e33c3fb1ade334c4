"""The simulated venue behind Binance's REST/WebSocket API on localhost (see docs/venue-server.md).

Sans-I/O core: ``protocol`` (REST endpoints over ``venues.sim.SimVenue``), ``auth`` (keys,
HMAC signatures, timestamps), ``limits`` (weights, order counts, 429/418), ``market`` and
``streams`` (public market state and Binance's stream payloads), ``faults`` (fault injection).
I/O: ``app`` (aiohttp). For tests: ``testing.serve_in_thread(ServerConfig(...))``.
"""
