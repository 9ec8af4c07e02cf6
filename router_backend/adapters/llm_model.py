"""Triton adapter of one language model: copied by export as model_repository/NAME/1/model.py.

    model_repository/gpt2/1/model.py  (this file)  ->  router_backend.engine (the engine)

Decoupled: with stream true one response per new piece of text, else exactly one.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import triton_python_backend_utils as pb_utils

from router_backend.adapters.triton_io import (FINAL, model_parameters, request_fields, require_decoupled,
                                               response, send_error)
from router_backend.contract import GenerateParams, parse_generate
from router_backend.engine.decoder import OnnxDecoder
from router_backend.engine.scheduler import EngineLimits, GenerationEngine, GenerationResult
from router_backend.engine.tokenizer import TextTokenizer, build_generation_request
from router_backend.errors import GenerationFailed

INPUTS = [name for name in GenerateParams.model_fields]


class _ResponseSink:
    """Engine output -> Triton responses for one request."""

    def __init__(self, sender, request, streamed: bool, observe) -> None:
        self._sender = sender
        self._request = request
        self._streamed = streamed  # streamed text went out piece by piece already
        self._observe = observe
        self._checked_at = 0.0
        self._cancelled = False

    def on_text(self, piece: str) -> None:
        self._sender.send(response(text_output=piece))

    def on_finish(self, result: GenerationResult) -> None:
        self._observe(result)
        text = "" if self._streamed else result.text
        logprob = float(result.mean_logprob) if result.mean_logprob is not None else float("nan")
        self._sender.send(response(text_output=text, tokens=result.tokens, finish_reason=result.finish_reason,
                                   mean_logprob=logprob), flags=FINAL)

    def on_error(self, error: Exception) -> None:
        send_error(self._sender, GenerationFailed(f"generation failed: {error}"))

    def cancelled(self) -> bool:
        # each check is a round trip to the server process: ask at most every 20 ms
        now = time.monotonic()
        if now - self._checked_at >= 0.02:
            self._checked_at = now
            self._cancelled = self._request.is_cancelled()
        return self._cancelled


class _EngineGauges:
    """Publishes the engine's queue and batch on Triton's metrics port (the router balances on them)."""

    def __init__(self, model: str, engine: GenerationEngine, load_seconds: float) -> None:
        # a Metric is only valid while its MetricFamily lives: keep both
        self._families = []

        def gauge(name: str, doc: str):
            family = pb_utils.MetricFamily(name=name, description=doc, kind=pb_utils.MetricFamily.GAUGE)
            self._families.append(family)
            return family.Metric(labels={"model": model})

        self._queued = gauge("switchyard_engine_queued", "Requests waiting for a slot in the model's engine")
        self._active = gauge("switchyard_engine_active", "Sequences decoding in the model's engine batch")
        self._ttft = gauge("switchyard_engine_time_to_first_token_seconds",
                           "Time to first token inside the engine (EWMA over all callers)")
        self._load = gauge("switchyard_model_load_seconds", "Seconds the model took to load")
        self._load.set(load_seconds)
        self._ttft_s = 0.0
        self._engine = engine
        self._stop = threading.Event()
        threading.Thread(target=self._run, name="engine-gauges", daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            stats = self._engine.stats()
            self._queued.set(stats.queued)
            self._active.set(stats.active)
            self._ttft.set(self._ttft_s)

    def observe(self, result: GenerationResult) -> None:
        """Fold one finished request into the engine's time-to-first-token average."""
        new = result.time_to_first_token_s
        self._ttft_s = new if not self._ttft_s else 0.8 * self._ttft_s + 0.2 * new

    def stop(self) -> None:
        self._stop.set()


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
        self.gauges = _EngineGauges(self.name, self.engine, time.perf_counter() - began)

    def execute(self, requests: list) -> None:
        for request in requests:
            sender = request.get_response_sender()
            try:
                params = parse_generate(request_fields(request, INPUTS))
                generation = build_generation_request(params, self.tokenizer, self.context_length, self.name)
            except Exception as exc:  # noqa: BLE001 - reported to this request, others go on
                send_error(sender, exc)
                continue
            self.engine.submit(generation, _ResponseSink(sender, request, generation.stream, self.gauges.observe))
        return None

    def finalize(self) -> None:
        self.gauges.stop()
        self.engine.stop()
