"""venues/sim layer (see docs/architecture.md)."""
