"""Triton adapter of usage analytics: window_s -> pointsman.ops.usage -> summary (JSON).

    curl -X POST localhost:8000/v2/models/usage/generate -d '{"window_s": 3600}'
"""

import json
import os
import urllib.request
from pathlib import Path

from pointsman.ops.usage import UsageAnalytics, open_store, specialists_from_catalog, to_json
from pointsman.ops.usage.recording import recording_status
from pointsman.policy.selection.live import start_live_status
from pointsman.triton_adapters.triton_io import (
    check_known_fields,
    error_response,
    model_parameters,
    request_fields,
    response,
)

INPUTS = ["window_s"]


class TritonPythonModel:
    def initialize(self, args):
        params = model_parameters(json.loads(args["model_config"]))
        # the specialists the suggestions compare against: the models in the repository now
        # read on demand (summaries are rare): no polling thread of its own
        catalog, _, self.poller = start_live_status(Path(args["model_repository"]).parent, background=False)
        self.store = open_store(params.get("state_dir") or None)  # or $POINTSMAN_DATABASE_URL
        self.analytics = UsageAnalytics(self.store, lambda: specialists_from_catalog(catalog))
        self.analytics.prune(float(params.get("retention_days") or 0))  # at load: no timer thread to own

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                fields = request_fields(request, INPUTS)
                check_known_fields(fields, INPUTS)
                self.poller.refresh()  # the models in the repository now: the specialists come from them
                summary = self.analytics.summary(fields.get("window_s"))
                summary["recording"] = recording_status(self._metrics_text())  # what the summary misses
                responses.append(response(summary=to_json(summary)))
            except Exception as exc:  # noqa: BLE001 - reported to this request, others go on
                responses.append(error_response(exc))
        return responses

    @staticmethod
    def _metrics_text():
        url = os.environ.get("POINTSMAN_METRICS_URL", "http://127.0.0.1:8002/metrics")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                return resp.read().decode("utf-8", errors="replace")
        except OSError:
            return None

    def finalize(self):
        self.poller.stop()
        self.store.close()
