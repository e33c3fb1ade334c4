"""venues/binance layer (see docs/architecture.md)."""
