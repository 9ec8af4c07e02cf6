"""Triton adapter of `catalog`: catalog facts + live status -> one JSON list.

    curl -X POST localhost:8000/v2/models/catalog/generate -d '{}'
"""

import json

import triton_python_backend_utils as pb_utils

from pointsman.errors import InvalidRequest
from pointsman.policy.selection.live import health_of, start_live_status
from pointsman.policy.selection.metadata import model_metadata
from pointsman.triton_adapters.triton_io import model_parameters, request_fields, response, to_triton_error


class TritonPythonModel:
    def initialize(self, args):
        params = model_parameters(json.loads(args["model_config"]))
        # the router measures; this model reads its figures back from the metrics port
        self.catalog, self.board, self.poller = start_live_status(params.get("catalog_path", ""), import_live=True)

    def execute(self, requests):
        return [self._answer(request) for request in requests]

    def _answer(self, request):
        try:
            fields = request_fields(request, ["model"])
            unknown = sorted(set(fields) - {"model"})
            if unknown:
                raise InvalidRequest(unknown[0], "unknown field; accepted fields: model")
            wanted = fields.get("model")
            if wanted is not None and wanted not in self.catalog:
                raise InvalidRequest("model", f"must be one of {', '.join(self.catalog.names)}", got=wanted)
            statuses = self.board.snapshot()
            names = [wanted] if wanted else self.catalog.names
            health = self.poller.health
            return response(models=json.dumps([{**model_metadata(self.catalog[n], statuses[n]),
                                                "health": health_of(health, self.catalog[n])} for n in names]))
        except Exception as exc:  # noqa: BLE001 - per-request error, the model keeps serving
            return pb_utils.InferenceResponse(error=to_triton_error(exc))

    def finalize(self):
        self.poller.stop()
