"""Usage analytics: one record per router request, stored in SQLite or PostgreSQL, summarised with advice.

    writer = RecordWriter(open_store()); writer.record(record)
    summary = UsageAnalytics(open_store()).summary(window_s=3600)
"""

from pointsman.ops.usage.analytics import describe, routing_table, summarize, to_json
from pointsman.ops.usage.outcome import error_kind, record_from_outcome
from pointsman.ops.usage.records import SELECTION_MODES, RequestRecord
from pointsman.ops.usage.service import UsageAnalytics
from pointsman.ops.usage.storage import STORE_ERRORS, Store, StoreError, open_store
from pointsman.ops.usage.store import StateStore, default_db_path
from pointsman.ops.usage.suggestions import Thresholds, specialists_from_catalog, suggest
from pointsman.ops.usage.writer import RecordWriter

__all__ = ["STORE_ERRORS", "RecordWriter", "RequestRecord", "SELECTION_MODES", "StateStore", "Store", "StoreError",
           "Thresholds", "UsageAnalytics", "default_db_path", "describe", "error_kind", "open_store",
           "record_from_outcome", "routing_table", "specialists_from_catalog", "suggest", "summarize", "to_json"]
