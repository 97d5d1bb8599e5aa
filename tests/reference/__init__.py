"""An independent, deliberately simple reference exchange, a seeded generator and their driver."""
