"""The domain core: exact types, events, clock, kernel and ports.

`engine` imports nothing above it (see docs/architecture.md); every other layer
speaks to the others only through the types and ports defined here.
"""
