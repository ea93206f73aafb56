"""Sample data: legacy `trading_bot.db` files for the demo, the tests and the benchmark (not library code).

`bot_history` writes history shaped like the real bot's; `zepix_store.legacy_data` the edge cases and the
large hash-generated files the benchmark uses.
"""
