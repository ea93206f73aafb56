"""The benchmark harness behind `zepix-store bench`: each figure set against raw SQLite in the same run.

Not imported by the library: only the `bench` command (and its tests) use it.
"""

__all__: list[str] = []
