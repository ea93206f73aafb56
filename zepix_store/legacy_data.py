"""Old import path of the legacy-history generator, kept while callers move to `zepix_store._sample.legacy`."""

from ._sample.legacy import (
    LEGACY_SCHEMA,
    MAPPING,
    LegacySummary,
    build_legacy_db,
    edge_rows,
    write_wal_only_trades,
)

__all__ = ["LEGACY_SCHEMA", "MAPPING", "LegacySummary", "build_legacy_db", "edge_rows", "write_wal_only_trades"]
