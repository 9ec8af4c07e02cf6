"""Model metadata and live status in the shape of the original plan's metadata system.

    model_metadata(catalog["gpt2"], board.snapshot()["gpt2"])
    # {"model_name": "gpt2", "capabilities": [...], "specialization_score": {...},
    #  "performance_metrics": {...measured...}, "current_status": {"loaded": true, ...}}
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pointsman.policy.catalog import ModelEntry
from pointsman.policy.selection.status import ModelStatus


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def model_metadata(entry: ModelEntry, status: ModelStatus) -> dict[str, Any]:
    """Catalog facts plus figures measured at run time (None until measured)."""
    return {
        "model_name": entry.name,
        "triton_model": entry.call_name,  # the model the router calls
        "interface": entry.interface,  # pointsman, tensorrtllm or vllm
        "family": entry.family,
        "capabilities": list(entry.capabilities),
        "specialization_score": dict(entry.specialization_score),
        "context_length": entry.context_length,
        "performance_metrics": {
            # raw: what requests measured, batch sharing included
            "measured_tokens_per_second": None if status.measured_tokens_per_s is None
            else round(status.measured_tokens_per_s, 2),
            # modelled: one sequence alone, the measured pace x (1 + 0.35 x (concurrency - 1)); selection uses it
            "avg_tokens_per_second": None if status.tokens_per_s is None else round(status.tokens_per_s, 2),
            "avg_tokens_per_second_basis": "modelled: measured pace normalised to one sequence alone",
            "avg_time_to_first_token_s": None if status.ttft_s is None else round(status.ttft_s, 4),
            "avg_load_time": None if status.load_time_s is None else round(status.load_time_s, 3),
            "avg_queue_time_s": None if status.queue_s is None else round(status.queue_s, 4),
            "requests_served": status.requests_served,
            "errors": status.errors,
        },
        "current_status": {
            "loaded": status.ready,
            "queue_length": status.pending,
            "in_flight": max(status.in_flight, status.active),
            "last_used": _iso(status.last_used),
        },
        "priors": {"quality": entry.quality_prior, "tokens_per_second": entry.tokens_per_second_prior,
                   "time_to_first_token_s": entry.time_to_first_token_prior},
    }
