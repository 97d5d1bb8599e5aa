"""Matching: one price-time priority book per instrument, driven by commands, answering events."""
