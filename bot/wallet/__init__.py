"""Wallet domain: an append-only double-entry ledger in integer KRW. No Telegram imports."""
