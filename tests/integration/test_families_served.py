"""Every supported family, exported and served on a real tritonserver, decodes as transformers does.

    .venv/bin/pytest -q tests/integration/test_families_served.py

Tiny random-weight checkpoints (2 layers, width 64) of gpt2, codegen, gpt_neox, llama,
mistral, qwen2 and phi3 are built in process (pointsman.export.random_checkpoints), each
with the feature its family brings: grouped-query attention, rope scaling (llama3,
linear, longrope), a sliding window, tied or untied embeddings, a BOS prefix from the
tokenizer and two end-of-sequence ids in generation_config.json. One tritonserver serves
them all. Greedy output through /v2/models/NAME/generate must equal transformers
`generate()`: the same text, token count, finish reason and mean log-probability (which
pins the token ids), alone and with the three prompts in flight together.
"""

from __future__ import annotations

import io
import json
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from rich.console import Console

from pointsman.engine.decoder import usable_cores
from pointsman.export.families import SUPPORTED_MODEL_TYPES
from pointsman.export.pipeline import export_model
from pointsman.export.random_checkpoints import END_OF_TURN, build_checkpoint, family_tokenizer
from pointsman.launcher.tritonserver import ServerError, ServerPorts, TritonServer
from tests.integration.conftest import start_until_ready

PROMPTS = ("def add(a, b):", "The capital of France is", "Once upon a time")
NEW_TOKENS = 12
READY_TIMEOUT_S = 240.0


@dataclass(frozen=True)
class Expected:
    text: str
    tokens: int
    finish_reason: str
    mean_logprob: float


@dataclass
class FamilyServer:
    url: str
    checkpoints: dict[str, Path]
    tokenizer: object
    log: Path


@pytest.fixture(scope="session")
def family_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FamilyServer]:
    """Export one tiny checkpoint per family into a scratch repository and serve them all."""
    root = tmp_path_factory.mktemp("families")
    tokenizer = family_tokenizer(root / "tokenizer", add_bos=True)
    eos_ids = (tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(END_OF_TURN))
    repository = root / "repository"
    checkpoints = {}
    for family in SUPPORTED_MODEL_TYPES:
        checkpoints[family] = build_checkpoint(family, tokenizer, root / "checkpoints" / family, eos_ids=eos_ids)
        export_model(checkpoints[family], family, repository, console=Console(file=io.StringIO()))
    state = root / "tritonserver"
    state.mkdir()
    server = TritonServer(repository, ports=ServerPorts.free(), state_dir=state, log_file=state / "tritonserver.log")
    try:
        try:
            start_until_ready(server)
        except ServerError as exc:
            pytest.fail(f"tritonserver did not become ready: {exc}", pytrace=False)
        yield FamilyServer(f"http://{server.host}:{server.ports.http}", checkpoints, tokenizer,
                           state / "tritonserver.log")
    finally:
        server.stop()


def transformers_greedy(checkpoint: Path, tokenizer, prompt: str) -> Expected:
    """What transformers generate() answers greedily, with its own stopping on every EOS id."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(checkpoint, attn_implementation="eager").eval()
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False, output_logits=True,
                             return_dict_in_generate=True)
    generated = out.sequences[0, ids.shape[1]:].tolist()
    eos = set(model.generation_config.eos_token_id)
    ended = bool(generated) and generated[-1] in eos
    kept = generated[:-1] if ended else generated
    logprobs = [torch.log_softmax(out.logits[i][0].double(), -1)[t].item() for i, t in enumerate(kept)]
    return Expected(text=tokenizer.decode(kept, skip_special_tokens=True), tokens=len(kept),
                    finish_reason="eos" if ended else "length",
                    mean_logprob=sum(logprobs) / len(logprobs) if logprobs else float("nan"))


def http_json(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120.0) as response:  # an HTTP error raises, failing the test
        return json.loads(response.read())


def served_greedy(url: str, model: str, prompt: str) -> dict:
    body = http_json(f"{url}/v2/models/{model}/generate",
                     {"text_input": prompt, "max_tokens": NEW_TOKENS, "temperature": 0.0})
    assert "error" not in body, body
    return body


def assert_same(served: dict, expected: Expected) -> None:
    assert (served["text_output"], served["tokens"], served["finish_reason"]) == (
        expected.text, expected.tokens, expected.finish_reason)
    assert served["mean_logprob"] == pytest.approx(expected.mean_logprob, abs=1e-3, nan_ok=True)


@pytest.mark.parametrize("family", SUPPORTED_MODEL_TYPES)
def test_served_greedy_output_equals_transformers_generate_alone_and_in_flight(family, family_server):
    expected = [transformers_greedy(family_server.checkpoints[family], family_server.tokenizer, p) for p in PROMPTS]

    alone = [served_greedy(family_server.url, family, prompt) for prompt in PROMPTS]
    with ThreadPoolExecutor(len(PROMPTS)) as pool:  # the engine batches requests that arrive together
        together = list(pool.map(lambda p: served_greedy(family_server.url, family, p), PROMPTS))

    for served, want in zip(alone, expected, strict=True):
        assert_same(served, want)
    for served, want in zip(together, expected, strict=True):
        assert_same(served, want)


def test_served_config_carries_bos_every_eos_id_and_the_family_context(family_server):
    tokenizer = family_server.tokenizer
    eos = f"{tokenizer.eos_token_id},{tokenizer.convert_tokens_to_ids(END_OF_TURN)}"
    for family, context in (("llama", "128"), ("phi3", "128")):  # phi3: longrope stops at its original length
        config = http_json(f"{family_server.url}/v2/models/{family}_stream/config")  # the engine model
        params = {k: v["string_value"] for k, v in config["parameters"].items()}
        assert params["eos_token_id"] == eos
        assert params["bos_token_id"] == str(tokenizer.bos_token_id)
        assert params["context_length"] == context


def test_each_engine_counts_the_repository_threads_before_it_spins(family_server):
    """intra_op_spinning auto (export's default): seven one-thread engines spin only on seven cores or more."""
    decisions = [line for line in family_server.log.read_text().splitlines() if "intra_op_spinning auto" in line]
    expected = "on" if usable_cores() >= len(SUPPORTED_MODEL_TYPES) else "off"
    threads = ", ".join(["1"] * len(SUPPORTED_MODEL_TYPES))

    assert len(decisions) == len(SUPPORTED_MODEL_TYPES), decisions
    assert all(f"-> {expected} (engine threads [{threads}], {usable_cores()} cores)" in line
               for line in decisions), decisions
