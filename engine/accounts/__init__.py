"""Accounts: QIFI money, positions, risk, settlement the accounts core (hold, match, release)."""
