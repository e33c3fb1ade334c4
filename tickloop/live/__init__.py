"""Live sessions (record, paper, live): wiring of adapters, kernel, logs and operator tools."""
