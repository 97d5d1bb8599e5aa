"""External feed connectors: other venues' trades, tickers, books and K-lines, normalized.

`venues.VENUES` maps a venue name to its connector class; docs/feeds.md describes the pipeline,
the sequence rules, the tools (`bin/feed`) and the benchmark (`bin/bench feeds`).
"""
