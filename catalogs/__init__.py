"""Storage: the Arrow event log, its pyarrow-free codec, the Parquet catalog, importers."""
