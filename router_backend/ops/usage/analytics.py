"""Usage summary over a window of request records: counts, rates, percentiles, routing, advice.

    summary = summarize(store.records(since=now - 3600), window_s=3600, specialists={"coding": "codegen"})
    summary["routing_table"]["coding"]["models"]   # {"codegen": 0.78, "gpt2": 0.22}
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from pointsman.ops.usage.records import SELECTION_MODES, RequestRecord
from pointsman.ops.usage.suggestions import Thresholds, suggest

LATENCY_FIELDS = ("selection_ms", "ttft_s", "duration_s", "per_token_s")


def describe(values: Iterable[float | None]) -> dict[str, float | int]:
    """n, mean and the 50th/90th/99th percentiles (linear interpolation) and max; {"n": 0} if empty."""
    data = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if data.size == 0:
        return {"n": 0}
    p50, p90, p99 = np.percentile(data, [50, 90, 99])
    return {"n": int(data.size), "mean": float(data.mean()), "p50": float(p50), "p90": float(p90),
            "p99": float(p99), "max": float(data.max())}


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _fractions(counts: Counter) -> dict[str, float]:
    total = sum(counts.values())
    return {key: round(n / total, 4) for key, n in counts.most_common()}


def _latencies(records: Sequence[RequestRecord]) -> dict[str, dict]:
    ok = [r for r in records if r.ok]
    return {
        "selection_ms": describe(r.selection_ms for r in records if r.selection_mode),
        "ttft_s": describe(r.ttft_s for r in ok),
        "duration_s": describe(r.duration_s for r in ok),
        "per_token_s": describe(r.per_token_s for r in ok),
    }


def _per_model(records: Sequence[RequestRecord]) -> dict[str, dict]:
    by_model: dict[str, list[RequestRecord]] = defaultdict(list)
    for r in records:
        if r.selected_model:
            by_model[r.selected_model].append(r)
    out = {}
    for model, recs in sorted(by_model.items()):
        ok = [r for r in recs if r.ok]
        errors = len(recs) - len(ok)
        busy_time = sum(r.duration_s for r in ok)
        tokens = sum(r.tokens for r in ok)
        out[model] = {
            "requests": len(recs),
            "errors": errors,
            "error_rate": round(_rate(errors, len(recs)), 4),
            "tokens": tokens,
            "tokens_per_s": round(tokens / busy_time, 3) if busy_time > 0 else None,
            "ttft_s": describe(r.ttft_s for r in ok),
            "duration_s": describe(r.duration_s for r in ok),
            "per_token_s": describe(r.per_token_s for r in ok),
        }
    return out


def routing_table(records: Sequence[RequestRecord]) -> dict[str, dict]:
    """Task -> requests and the fraction that went to each model (manual requests carry no task)."""
    by_task: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        if r.task and r.selected_model:
            by_task[r.task][r.selected_model] += 1
    return {task: {"requests": sum(c.values()), "models": _fractions(c)} for task, c in sorted(by_task.items())}


def summarize(records: Sequence[RequestRecord], *, window_s: float | None = None, now: float | None = None,
              specialists: Mapping[str, str] | None = None, thresholds: Thresholds | None = None) -> dict:
    """The usage summary of `records` (already limited to the window by the caller)."""
    now = time.time() if now is None else now
    n = len(records)
    modes = Counter(r.selection_mode or "unknown" for r in records)
    errors = [r for r in records if not r.ok]
    fallbacks = [r for r in records if r.fallback_used]
    ok = [r for r in records if r.ok]
    return {
        "window_s": window_s,
        "generated_at": now,
        "first_timestamp": records[0].timestamp if records else None,
        "last_timestamp": records[-1].timestamp if records else None,
        "requests": n,
        "by_mode": {m: modes.get(m, 0) for m in SELECTION_MODES} | ({"unknown": modes["unknown"]}
                                                                     if modes.get("unknown") else {}),
        "by_model": dict(Counter(r.selected_model for r in records if r.selected_model).most_common()),
        "by_task": dict(Counter(r.task for r in records if r.task).most_common()),
        "by_analyzer": dict(Counter(r.analyzer for r in records if r.analyzer).most_common()),
        "fallback": {"count": len(fallbacks), "rate": round(_rate(len(fallbacks), n), 4),
                     "reasons": dict(Counter(r.fallback_reason or "unspecified" for r in fallbacks).most_common())},
        "errors": {"count": len(errors), "rate": round(_rate(len(errors), n), 4),
                   "by_kind": dict(Counter(r.error_kind for r in errors).most_common())},
        "tokens": {"total": sum(r.tokens for r in ok),
                   "per_request_mean": round(_rate(sum(r.tokens for r in ok), len(ok)), 3)},
        "latency": _latencies(records),
        "per_model": _per_model(records),
        "routing_table": routing_table(records),
        "suggestions": suggest(records, specialists or {}, thresholds or Thresholds()),
    }


def _finite(value):
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def to_json(value) -> str:
    """Strict JSON text: NaN and infinities (not JSON) become null."""
    return json.dumps(_finite(value), allow_nan=False)
