"""Triton adapter of A/B experiments: (action, payload JSON) -> ExperimentManager -> result JSON.

    curl -X POST localhost:8000/v2/models/experiments/generate -d '{"action": "list"}'

Actions: create, pause, resume, stop, list, report, feedback (pointsman.ops.experiments.ACTIONS).
With an admin key configured, create, pause, resume and stop need it (pointsman.policy.admin).
"""

import json
from pathlib import Path

from pointsman.errors import InvalidRequest
from pointsman.ops.experiments import ACTIONS, ExperimentManager
from pointsman.ops.usage import open_store, to_json
from pointsman.policy.admin import configured_key, require_admin
from pointsman.policy.selection.live import start_live_status
from pointsman.triton_adapters.triton_io import (
    admin_key_of,
    check_known_fields,
    error_response,
    model_parameters,
    request_fields,
    response,
)

INPUTS = ["action", "payload"]


class TritonPythonModel:
    def initialize(self, args):
        params = model_parameters(json.loads(args["model_config"]))
        # arms created at run time must name a model the repository has; the seed file may name
        # models that load later (a request goes outside the experiment while its arm's model is away)
        self.catalog, _, self.poller = start_live_status(Path(args["model_repository"]).parent, background=False)
        self.store = open_store(params.get("state_dir") or None)  # or $POINTSMAN_DATABASE_URL
        self.manager = ExperimentManager(self.store, known_models=self._known_models)
        seed = Path(args["model_repository"]) / params.get("experiments_file", "experiments.toml")
        self.manager.seed(seed)  # a malformed file refuses the load, naming the experiment and field

    def _known_models(self) -> set[str]:
        self.poller.refresh()  # the repository as it is now: a model loaded a moment ago counts
        return set(self.catalog.names)

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                fields = request_fields(request, INPUTS)
                check_known_fields(fields, INPUTS)
                if "action" not in fields:
                    raise InvalidRequest("action", f"is required: one of {', '.join(ACTIONS)}")
                require_admin(str(fields["action"]), admin_key_of(request), configured_key())
                result = self.manager.handle(fields["action"], fields.get("payload"))
                responses.append(response(result=to_json(result)))
            except Exception as exc:  # noqa: BLE001 - reported to this request, others go on
                responses.append(error_response(exc))
        return responses

    def finalize(self):
        self.poller.stop()
        self.store.close()
