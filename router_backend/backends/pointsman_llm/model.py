"""The `pointsman_llm` Python-based backend: one language model, served by the Pointsman engine.

    model_repository/gpt2/config.pbtxt   backend: "pointsman_llm"   (+ 1/model.onnx, 1/tokenizer.json)
    <backend directory>/pointsman_llm/model.py   (this file, installed once)

A model folder holds only its config, ONNX graph and tokenizer, as a model of Triton's
vLLM backend holds only model.json: Triton finds this file in the backend directory
(`pointsman serve` installs it there; so does docker/Dockerfile). Inputs and outputs come
from pointsman.policy.contract through auto_complete_config. Decoupled: with stream true
one response per new piece of text, else exactly one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pointsman.engine.decoder import OnnxDecoder
from pointsman.engine.scheduler import EngineLimits, GenerationEngine
from pointsman.engine.tokenizer import TextTokenizer, build_generation_request, parse_token_ids
from pointsman.policy.contract import LLM_OUTPUTS, GenerateParams, field_names, input_tensors, parse_generate
from pointsman.triton_adapters.engine_io import EngineGauges, Outbox, ResponseSink
from pointsman.triton_adapters.model_config import complete_config
from pointsman.triton_adapters.triton_io import model_parameters, request_fields, require_decoupled, send_error

INPUTS = field_names(GenerateParams)


class TritonPythonModel:
    @staticmethod
    def auto_complete_config(auto_complete_model_config):
        return complete_config(auto_complete_model_config, input_tensors(GenerateParams), LLM_OUTPUTS, decoupled=True)

    def initialize(self, args: dict) -> None:
        began = time.perf_counter()
        config = json.loads(args["model_config"])
        self.name = args["model_name"]
        require_decoupled(config, self.name)
        params = model_parameters(config)
        folder = Path(args["model_repository"]) / args["model_version"]
        self.context_length = int(params["context_length"])
        bos = parse_token_ids("bos_token_id", params.get("bos_token_id", ""))
        self.tokenizer = TextTokenizer.from_file(str(folder / params.get("tokenizer_file", "tokenizer.json")),
                                                 bos_id=bos[0] if bos else None)
        decoder = OnnxDecoder.from_file(str(folder / params.get("onnx_file", "model.onnx")),
                                        threads=params.get("intra_op_threads", "auto"),
                                        providers=params.get("execution_providers", "auto"))
        self.engine = GenerationEngine(decoder, self.tokenizer, parse_token_ids("eos_token_id", params["eos_token_id"]),
                                       EngineLimits.from_parameters(params))
        self.engine.start()
        self.outbox = Outbox()
        self.gauges = EngineGauges(self.name, self.engine, time.perf_counter() - began)

    def execute(self, requests: list) -> None:
        for request in requests:
            sender = request.get_response_sender()
            try:
                params = parse_generate(request_fields(request, INPUTS))
                generation = build_generation_request(params, self.tokenizer, self.context_length, self.name)
            except Exception as exc:  # noqa: BLE001 - reported to this request, others go on
                send_error(sender, exc)
                continue
            self.engine.submit(generation, ResponseSink(sender, request, generation.stream, self.outbox,
                                                        self.gauges.observe))
        return None

    def finalize(self) -> None:
        self.gauges.stop()
        self.engine.stop()
        self.outbox.close()
