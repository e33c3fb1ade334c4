"""venues/binance: the live Binance adapter (see docs/live-adapter.md).

``signing`` / ``requests`` / ``protocol`` are sans-I/O (bytes and JSON in, events out);
``rest``, ``orders``, ``streams``, ``userstream`` are thin aiohttp shells on the session's one
event loop; ``venue.LiveVenue`` implements the engine's ``Venue`` port. Nothing here is imported
eagerly: aiohttp loads on first I/O.
"""
