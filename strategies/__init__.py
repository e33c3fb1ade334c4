"""strategies layer (see docs/architecture.md)."""
