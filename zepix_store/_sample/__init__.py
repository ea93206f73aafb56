"""Sample data: legacy `trading_bot.db` files for the demo, the tests and the benchmark (not library code).

`bot_history` writes history shaped like the real bot's; `legacy` the edge cases and the large hash-generated
files the benchmark uses; `project` a project folder holding the shipped configs (package data in `configs/`).
"""

__all__: list[str] = []
