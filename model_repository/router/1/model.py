"""The non-decoupled router twin: forwards to `router_stream` over loopback gRPC (pointsman.triton_adapters.twin).

    curl -X POST localhost:8000/v2/models/router/infer -d '{"inputs": [{"name": "text_input", ...}]}'

It also watches `router_stream`, as router_stream watches it: a probe every `probe_s`
(policy.contract.ROUTER_PROBE), and a reload (unload, then load) when its stub is dead.
"""

import json

from pointsman.policy.contract import ROUTER_OUTPUTS, RouterParams, input_tensors
from pointsman.policy.health import HealthPolicy, HealthRegistry
from pointsman.policy.selection.live import endpoints_from_env
from pointsman.triton_adapters.model_config import complete_config
from pointsman.triton_adapters.model_keeper import TWIN_PROBE_S, ModelKeeper, RepositoryClient, TwinWatch
from pointsman.triton_adapters.triton_io import model_parameters
from pointsman.triton_adapters.twin import Twin


class TritonPythonModel:
    @staticmethod
    def auto_complete_config(auto_complete_model_config):
        return complete_config(auto_complete_model_config, input_tensors(RouterParams), ROUTER_OUTPUTS,
                               decoupled=False)

    def initialize(self, args):
        params = model_parameters(json.loads(args["model_config"]))
        target = params.get("forward_to", "router_stream")
        self.twin = Twin(args["model_name"], target, input_tensors(RouterParams),
                         ROUTER_OUTPUTS, workers=int(params.get("worker_threads", "64")))
        # the one router's stub can die too (docs/faults.md); nothing else would notice
        health = HealthRegistry(HealthPolicy())
        self.keeper = ModelKeeper(health, target_of=lambda name: name,
                                  repository=RepositoryClient(endpoints_from_env().grpc_url))
        self.watch = TwinWatch(health, [target], self.twin.probe, interval=float(params.get("probe_s", TWIN_PROBE_S)))
        self.keeper.start()
        self.watch.start()

    def execute(self, requests):
        return self.twin.execute(requests)

    def finalize(self):
        self.watch.stop()
        self.keeper.stop()
        self.twin.close()
