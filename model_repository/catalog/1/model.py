"""Triton adapter of `catalog`: catalog facts + live status -> one JSON list, and why any model is left out.

    curl -X POST localhost:8000/v2/models/catalog/generate -d '{}'
"""

import json
from pathlib import Path

import triton_python_backend_utils as pb_utils

from pointsman.errors import InvalidRequest
from pointsman.policy.selection.live import health_of, start_live_status
from pointsman.policy.selection.metadata import model_metadata
from pointsman.triton_adapters.triton_io import request_fields, response, to_triton_error


class TritonPythonModel:
    def initialize(self, args):
        # the router measures; this model reads its figures back from the metrics port, and
        # follows the repository index as the router does
        self.catalog, self.board, self.poller = start_live_status(Path(args["model_repository"]).parent,
                                                                  import_live=True)

    def execute(self, requests):
        return [self._answer(request) for request in requests]

    def _answer(self, request):
        try:
            fields = request_fields(request, ["model"])
            unknown = sorted(set(fields) - {"model"})
            if unknown:
                raise InvalidRequest(unknown[0], "unknown field; accepted fields: model")
            wanted = fields.get("model")
            self.poller.refresh()  # answer with the repository as it is now, not at the last poll
            if wanted is not None and wanted not in self.catalog:
                raise InvalidRequest("model", f"must be one of {', '.join(self.catalog.names)}", got=wanted)
            statuses, entries = self.board.snapshot(), {e.name: e for e in self.catalog}
            names = [wanted] if wanted else list(entries)
            health = self.poller.health
            return response(models=json.dumps([{**model_metadata(entries[n], statuses[n]),
                                                "health": health_of(health, entries[n])}
                                               for n in names if n in entries and n in statuses]),
                            problems=json.dumps(self.poller.discovery.problems))
        except Exception as exc:  # noqa: BLE001 - per-request error, the model keeps serving
            return pb_utils.InferenceResponse(error=to_triton_error(exc))

    def finalize(self):
        self.poller.stop()
