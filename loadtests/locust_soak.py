"""The locust users of locustfile.py, plus a recorder of every request's time, latency and outcome.

    POINTSMAN_SOAK_OUT=/tmp/soak.json .venv/bin/locust -f loadtests/locust_soak.py --headless -u 64 ...

Run by loadtests/soak.py, which turns the record into per-minute percentiles. Locust's
own history keeps only a 10-second window of percentiles; the soak wants each minute.
"""

from __future__ import annotations

import json
import os
import time
from array import array
from collections import Counter

from locust import events

# the users and their command-line options (locust runs every User class it finds here)
from locustfile import RouterGrpcUser, RouterHttpUser  # noqa: F401

_STARTED = time.time()
_LATENCY_MS: dict[int, array] = {}
_ERRORS: Counter = Counter()  # minute -> failed requests
_MESSAGES: Counter = Counter()  # first 120 characters of each error -> count


@events.request.add_listener
def _record(request_type, name, response_time, response_length, exception=None, **_kwargs) -> None:
    minute = int((time.time() - _STARTED) // 60)
    if exception is None:
        _LATENCY_MS.setdefault(minute, array("f")).append(float(response_time))
    else:
        _ERRORS[minute] += 1
        _MESSAGES[f"{request_type} {name}: {str(exception)[:120]}"] += 1


@events.quit.add_listener
def _write(**_kwargs) -> None:
    out = os.environ.get("POINTSMAN_SOAK_OUT")
    if not out:
        return
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"started": _STARTED,
                   "latency_ms": {str(m): list(v) for m, v in _LATENCY_MS.items()},
                   "errors": {str(m): n for m, n in _ERRORS.items()},
                   "messages": dict(_MESSAGES.most_common(20))}, f)
