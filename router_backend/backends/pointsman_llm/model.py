"""The `pointsman_llm` Python-based backend: one language model, served by the Pointsman engine.

    model_repository/gpt2_stream/config.pbtxt   backend: "pointsman_llm"   (+ 1/model.onnx, 1/tokenizer.json)
    model_repository/gpt2/config.pbtxt          backend: "pointsman_llm", forward_to: "gpt2_stream"
    <backend directory>/pointsman_llm/model.py   (this file, installed once)

A model folder holds only its config, ONNX graph and tokenizer, as a model of Triton's
vLLM backend holds only model.json: Triton finds this file in the backend directory
(`pointsman serve` installs it there; so does docker/Dockerfile). Inputs and outputs come
from pointsman.policy.contract through auto_complete_config.

Two roles, chosen by the config: the engine model (decoupled: with stream true one
response per new piece of text, else exactly one) and, when the config names
`forward_to`, its non-decoupled twin, which forwards over loopback gRPC and loads no engine.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import triton_python_backend_utils as pb_utils

from pointsman.engine.chat_template import ChatTemplate
from pointsman.engine.decoder import load_decoder, resolve_spinning, spinning_fits, usable_cores
from pointsman.engine.sampling import model_defaults
from pointsman.engine.scheduler import EngineLimits, GenerationEngine
from pointsman.engine.tokenizer import TextTokenizer, build_generation_request, parse_token_ids
from pointsman.policy.contract import LLM_OUTPUTS, GenerateParams, input_tensors, parse_generate
from pointsman.triton_adapters.engine_io import CancelWatch, EngineGauges, Outbox, ResponseSink, routed_stop
from pointsman.triton_adapters.model_config import complete_config
from pointsman.triton_adapters.repository_threads import FORWARD_TO, engine_threads
from pointsman.triton_adapters.triton_io import FINAL, model_parameters, request_fields, require_decoupled, send_error
from pointsman.triton_adapters.twin import Twin

INPUTS = input_tensors(GenerateParams)
TWIN_WORKERS = 64


def _forward_target(config: dict) -> str:
    return config.get("parameters", {}).get(FORWARD_TO, {}).get("string_value", "")


class TritonPythonModel:
    @staticmethod
    def auto_complete_config(auto_complete_model_config):
        twin = bool(_forward_target(auto_complete_model_config.as_dict()))
        return complete_config(auto_complete_model_config, INPUTS, LLM_OUTPUTS, decoupled=not twin)

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        self.name = args["model_name"]
        target = _forward_target(config)
        self.twin = Twin(self.name, target, INPUTS, LLM_OUTPUTS, TWIN_WORKERS) if target else None
        if self.twin is None:
            self._start_engine(config, args)

    def _start_engine(self, config: dict, args: dict) -> None:
        began = time.perf_counter()
        require_decoupled(config, self.name)
        params = model_parameters(config)
        folder = Path(args["model_repository"]) / args["model_version"]
        self.context_length = int(params["context_length"])
        bos = parse_token_ids("bos_token_id", params.get("bos_token_id", ""))
        self.tokenizer = TextTokenizer.from_file(str(folder / params.get("tokenizer_file", "tokenizer.json")),
                                                 bos_id=bos[0] if bos else None)
        # the checkpoint's own chat template, kept beside the tokenizer by export; else the plain one
        self.chat = ChatTemplate.from_folder(folder)
        self.sampling_defaults = model_defaults(params)  # penalties a request leaves out (config.pbtxt)
        decoder = load_decoder(str(folder / params.get("onnx_file", "model.onnx")),
                               threads=params.get("intra_op_threads", "auto"),
                               providers=params.get("execution_providers", "auto"),
                               spinning=self._spinning(params.get("intra_op_spinning", "auto"), args))
        self.engine = GenerationEngine(decoder, self.tokenizer, parse_token_ids("eos_token_id", params["eos_token_id"]),
                                       EngineLimits.from_parameters(params))
        self.engine.start()
        self.outbox = Outbox()
        self.watch = CancelWatch()
        self.gauges = EngineGauges(self.name, self.engine, time.perf_counter() - began)

    def _spinning(self, setting: str, args: dict) -> bool:
        """intra_op_spinning as a flag; auto spins when the repository's engines have a core per thread."""
        if str(setting).strip().lower() != "auto":
            return resolve_spinning(setting)
        cores = usable_cores()
        threads = engine_threads(Path(args["model_repository"]).parent, cores)
        spinning = resolve_spinning(setting, fits=spinning_fits(threads, cores))
        pb_utils.Logger.log_info(f"pointsman engine {self.name}: intra_op_spinning auto -> "
                                 f"{'on' if spinning else 'off'} (engine threads {threads}, {cores} cores)")
        return spinning

    def execute(self, requests: list) -> None:
        if self.twin is not None:
            return self.twin.execute(requests)
        for request in requests:
            sender = request.get_response_sender()
            if (stopped := routed_stop(request)) is not None:  # the router gave up on a request it sent
                self._stop(sender, stopped)
                continue
            try:
                params = parse_generate(request_fields(request, INPUTS))
                generation = build_generation_request(params, self.tokenizer, self.context_length, self.name,
                                                      chat=self.chat, defaults=self.sampling_defaults)
            except Exception as exc:  # noqa: BLE001 - reported to this request, others go on
                send_error(sender, exc)
                continue
            prefix = "" if params.exclude_input_in_output else self._prompt_text(params, generation)
            self.engine.submit(generation, ResponseSink(sender, request, generation.stream, self.outbox, self.watch,
                                                        self.gauges.observe, len(generation.prompt_ids), prefix))
        return None

    def _stop(self, sender, request_id: str) -> None:
        try:
            self.watch.stop(request_id)
        except Exception as exc:  # noqa: BLE001 - reported to this request, others go on
            send_error(sender, exc)
            return
        sender.send(flags=FINAL)

    def _prompt_text(self, params, generation) -> str:
        """The prompt as the model read it: the text, or the chat rendered with its template."""
        if params.text_input is not None:
            return params.text_input
        return self.tokenizer.decode(list(generation.prompt_ids))

    def finalize(self) -> None:
        if self.twin is not None:
            self.twin.close()
            return
        self.gauges.stop()
        self.engine.stop()
        self.watch.close()
        self.outbox.close()
