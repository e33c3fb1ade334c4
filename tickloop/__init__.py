"""tickloop layer (see docs/architecture.md)."""
