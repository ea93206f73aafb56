"""What the commands do, as library calls: each takes a StoreConfig (or paths) and returns a report object.

Nothing here prints, parses argv or exits: the thin modules at the top of the package (`zepix_store.migrate`,
`zepix_store.backup`, ...) do that, and so can a bot or a script that wants the same work done.
"""

__all__: list[str] = []
