"""Durability: the journal (WAL), checkpoints, the Parquet history and its polars queries.

See docs/storage.md for the formats, the durability modes and the public API.
"""
