"""The non-decoupled router twin: forwards to `router_stream` over loopback gRPC (pointsman.triton_adapters.twin).

    curl -X POST localhost:8000/v2/models/router/infer -d '{"inputs": [{"name": "text_input", ...}]}'
"""

import json

from pointsman.policy.contract import ROUTER_OUTPUTS, RouterParams, input_tensors
from pointsman.triton_adapters.model_config import complete_config
from pointsman.triton_adapters.triton_io import model_parameters
from pointsman.triton_adapters.twin import Twin


class TritonPythonModel:
    @staticmethod
    def auto_complete_config(auto_complete_model_config):
        return complete_config(auto_complete_model_config, input_tensors(RouterParams), ROUTER_OUTPUTS,
                               decoupled=False)

    def initialize(self, args):
        params = model_parameters(json.loads(args["model_config"]))
        self.twin = Twin(args["model_name"], params.get("forward_to", "router_stream"), input_tensors(RouterParams),
                         ROUTER_OUTPUTS, workers=int(params.get("worker_threads", "64")))

    def execute(self, requests):
        return self.twin.execute(requests)

    def finalize(self):
        self.twin.close()
