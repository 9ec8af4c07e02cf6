"""Triton adapter of one language model: copied by export as model_repository/NAME/1/model.py.

    model_repository/gpt2/1/model.py  (this file)  ->  router_backend.engine (the engine)

Decoupled: with stream true one response per new piece of text, else exactly one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from router_backend.adapters.engine_io import EngineGauges, Outbox, ResponseSink
from router_backend.adapters.triton_io import model_parameters, request_fields, require_decoupled, send_error
from router_backend.contract import GenerateParams, parse_generate
from router_backend.engine.decoder import OnnxDecoder
from router_backend.engine.scheduler import EngineLimits, GenerationEngine
from router_backend.engine.tokenizer import TextTokenizer, build_generation_request

INPUTS = [name for name in GenerateParams.model_fields]


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        began = time.perf_counter()
        config = json.loads(args["model_config"])
        self.name = args["model_name"]
        require_decoupled(config, self.name)
        params = model_parameters(config)
        folder = Path(args["model_repository"]) / args["model_version"]
        self.context_length = int(params["context_length"])
        self.tokenizer = TextTokenizer.from_file(str(folder / params.get("tokenizer_file", "tokenizer.json")))
        decoder = OnnxDecoder.from_file(str(folder / params.get("onnx_file", "model.onnx")),
                                        threads=int(params.get("intra_op_threads", "0")),
                                        providers=params.get("execution_providers", "auto"))
        limits = EngineLimits(max_batch_size=int(params.get("max_batch_size", "16")),
                              max_tokens_in_flight=int(params.get("max_tokens_in_flight", "16384")),
                              batching=params.get("batching", "true").lower() == "true")
        self.engine = GenerationEngine(decoder, self.tokenizer, int(params["eos_token_id"]), limits)
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
