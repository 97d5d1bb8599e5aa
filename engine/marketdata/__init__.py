"""Market-data aggregation: depth, ticks, daily statistics and K-lines, built from matching events.

Pure like the rest of `engine/`: time comes from the events, so replaying the same execs rebuilds
the same bars. The marketdata process renders what this package produces and publishes it.
"""
