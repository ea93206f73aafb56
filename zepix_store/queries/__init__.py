"""The bot's SQL, one home for PluginStore (async) and the compat facade (sync); one concept per module.

fetch.py reads rows as dicts; write.py inserts, upserts and saves trades through the backend's Operations
(the spellings that differ between engines); state.py stores system state values; windows.py selects rows of a
time window or a calendar day; plugin.py holds PluginStore's statements, bot.py the bot's own TradeDatabase
queries. Every statement binds `plugin_id`, so no caller can read or change another plugin's row.
"""

__all__: list[str] = []
