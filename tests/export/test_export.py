"""Export of tiny GPT-2 and CodeGen checkpoints into a scratch model repository.

    .venv/bin/pytest tests/export -q

The checkpoints are built here (a few thousand parameters, a byte-level tokenizer
trained on a few lines), so the whole module runs in seconds and needs no download.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from rich.console import Console

import pointsman.export.onnx_export as onnx_export
from pointsman.export.pipeline import export_model, export_record

CONTEXT = 64
TEXT = [
    "def add(a, b):\n    return a + b\n",
    "The quick brown fox jumps over the lazy dog.\n",
    "for i in range(10):\n    print(i * i)\n",
] * 4


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from pointsman.export.demo_models import train_tokenizer

    return train_tokenizer(TEXT, tmp_path_factory.mktemp("tokenizer"))


def build_checkpoint(family: str, tokenizer, out: Path, model_type: str | None = None) -> Path:
    import torch
    from transformers import CodeGenConfig, CodeGenForCausalLM, GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    eos = tokenizer.eos_token_id
    common = dict(vocab_size=len(tokenizer), n_positions=CONTEXT, n_embd=32, n_layer=2, n_head=2,
                  bos_token_id=eos, eos_token_id=eos)
    if family == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(**common))
    else:
        model = CodeGenForCausalLM(CodeGenConfig(n_ctx=CONTEXT, rotary_dim=8, **common))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def checkpoints(tokenizer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    return {family: build_checkpoint(family, tokenizer, root / family) for family in ("gpt2", "codegen")}


def quiet() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200), out


@pytest.mark.parametrize("family", ["gpt2", "codegen"])
def test_export_writes_only_config_tokenizer_and_onnx_within_parity(family, checkpoints, tmp_path):
    repository = tmp_path / "repo"
    console, _ = quiet()

    stamp = export_model(checkpoints[family], f"tiny-{family}", repository, console=console)

    folder = repository / f"tiny-{family}_stream"  # the engine
    written = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    # no model.py: the backend has it; tokenizer_config.json carries the chat template, if any
    assert written == ["1/model.onnx", "1/tokenizer.json", "1/tokenizer_config.json", "config.pbtxt"]
    config = (folder / "config.pbtxt").read_text()
    assert f'name: "tiny-{family}_stream"' in config and 'backend: "pointsman_llm"' in config
    assert "decoupled: true" in config
    assert "input" not in config.split("parameters")[0]  # the backend completes inputs from the contract
    twin = repository / f"tiny-{family}"  # its non-decoupled twin: a config and nothing else
    assert sorted(str(p.relative_to(twin)) for p in twin.rglob("*")) == ["1", "config.pbtxt"]
    twin_config = (twin / "config.pbtxt").read_text()
    assert f'name: "tiny-{family}"' in twin_config and f'string_value: "tiny-{family}_stream"' in twin_config
    assert "decoupled: true" not in twin_config
    assert float(stamp["max_abs_diff_prefill"]) <= 1e-3
    assert float(stamp["max_abs_diff_decode"]) <= 1e-3
    assert export_record(folder) == stamp


def test_onnx_graph_has_the_names_the_engine_feeds(checkpoints, tmp_path):
    import onnxruntime as ort

    export_model(checkpoints["gpt2"], "tiny", tmp_path, console=quiet()[0])
    onnx = tmp_path / "tiny_stream" / "1" / "model.onnx"
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])

    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    assert inputs[:5] == ["input_ids", "position_ids", "seqlens_k", "total_sequence_length", "logit_positions"]
    assert inputs[5:] == [f"past_key_values.{i}.{kv}" for i in range(2) for kv in ("key", "value")]
    assert outputs == ["logits", *(f"present.{i}.{kv}" for i in range(2) for kv in ("key", "value"))]


def test_a_second_export_of_an_unchanged_checkpoint_is_skipped_as_up_to_date(checkpoints, tmp_path):
    first = export_model(checkpoints["gpt2"], "tiny", tmp_path, console=quiet()[0])
    onnx = tmp_path / "tiny_stream" / "1" / "model.onnx"
    written = onnx.stat().st_mtime_ns
    console, out = quiet()

    second = export_model(checkpoints["gpt2"], "tiny", tmp_path, console=console)

    assert "up to date" in out.getvalue()
    assert second == first
    assert onnx.stat().st_mtime_ns == written


def test_a_checkpoint_of_an_unsupported_model_type_is_refused(tokenizer, tmp_path):
    from transformers import OPTConfig

    checkpoint = tmp_path / "opt"
    OPTConfig(vocab_size=len(tokenizer), hidden_size=32, ffn_dim=64, num_hidden_layers=1,
              num_attention_heads=2).save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)

    with pytest.raises(ValueError, match=r"model_type 'opt' is not supported \(supported: gpt2, codegen, gpt_neox, "
                                         r"llama, mistral, qwen2, phi3\)"):
        export_model(checkpoint, "opt", tmp_path / "repo", console=quiet()[0])

    assert not (tmp_path / "repo" / "opt").exists()


def test_a_folder_without_config_json_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        export_model(tmp_path, "nothing", tmp_path / "repo", console=quiet()[0])


def test_a_model_failing_the_parity_check_is_refused_and_not_written(checkpoints, tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_export, "PARITY_TOLERANCE", -1.0)

    with pytest.raises(onnx_export.ParityError, match="differs from PyTorch"):
        export_model(checkpoints["codegen"], "tiny", tmp_path / "repo", console=quiet()[0])

    for folder in (tmp_path / "repo" / "tiny", tmp_path / "repo" / "tiny_stream"):
        assert not folder.exists()  # no half-written folder for tritonserver to fail on


def test_a_refused_re_export_keeps_the_model_already_served(checkpoints, tmp_path, monkeypatch):
    first = export_model(checkpoints["gpt2"], "tiny", tmp_path, console=quiet()[0])
    monkeypatch.setattr(onnx_export, "PARITY_TOLERANCE", -1.0)

    with pytest.raises(onnx_export.ParityError):
        export_model(checkpoints["gpt2"], "tiny", tmp_path, force=True, console=quiet()[0])

    assert (tmp_path / "tiny_stream" / "1" / "model.onnx").is_file()
    assert export_record(tmp_path / "tiny_stream") == first


def test_the_checkpoints_chat_template_travels_with_the_model(checkpoints, tokenizer, tmp_path):
    import shutil

    from transformers import AutoTokenizer

    checkpoint = tmp_path / "chat"
    shutil.copytree(checkpoints["gpt2"], checkpoint)
    template = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
    tokenizer.chat_template = template
    tokenizer.save_pretrained(checkpoint)
    tokenizer.chat_template = None

    export_model(checkpoint, "chat", tmp_path / "repo", console=quiet()[0])

    assert AutoTokenizer.from_pretrained(tmp_path / "repo" / "chat_stream" / "1").chat_template == template



def _routing(coding: float):
    from pointsman.export.pipeline import RoutingFlags

    return RoutingFlags({"coding": coding, "creative": 0.2, "qa": 0.5, "reasoning": 0.3}, ("general", "coding"), 0.7,
                        tokens_per_second_prior=90.0)


def test_routing_flags_become_the_engines_pointsman_parameters_and_are_rewritten_when_up_to_date(
        checkpoints, tmp_path):
    from pointsman.export.repository import read_parameters
    from pointsman.policy.routing_metadata import entry_from_parameters

    export_model(checkpoints["codegen"], "tiny", tmp_path, console=quiet()[0], routing=_routing(0.9))
    entry = entry_from_parameters("tiny_stream", read_parameters(tmp_path / "tiny_stream"))
    assert entry is not None
    assert (entry.name, entry.call_name, entry.interface, entry.family) == ("tiny", "tiny_stream", "pointsman",
                                                                          "codegen")
    assert (entry.specialization_score["coding"], entry.context_length, entry.tokens_per_second_prior) == (
        0.9, CONTEXT, 90.0)
    assert not any(k.startswith("pointsman.") for k in read_parameters(tmp_path / "tiny"))  # the twin: none

    console, out = quiet()
    export_model(checkpoints["codegen"], "tiny", tmp_path, console=console, routing=_routing(0.1))
    assert "up to date" in out.getvalue()
    assert entry_from_parameters("tiny_stream", read_parameters(tmp_path / "tiny_stream")).specialization_score[
        "coding"] == 0.1
    export_model(checkpoints["codegen"], "tiny", tmp_path, console=quiet()[0])  # no flags: served, not routed
    assert entry_from_parameters("tiny_stream", read_parameters(tmp_path / "tiny_stream")) is None


@pytest.mark.parametrize(("flags", "phrase"), [
    (["--task-scores", "coding=1"], "--capabilities is required"),
    (["--task-scores", "coding=1,creative=1,qa=1", "--capabilities", "general", "--quality-prior", "1"],
     "--task-scores: every task needs a score; missing: reasoning"),
    (["--task-scores", "coding=1,creative=1,qa=1,reasoning=1", "--capabilities", "poetry", "--quality-prior", "1"],
     "--capabilities: a comma-separated list of general"),
    (["--task-scores", "coding=1,creative=1,qa=1,reasoning=1", "--capabilities", "general", "--quality-prior", "2"],
     "--quality-prior: a number from 0 to 1"),
])
def test_bad_routing_flags_are_usage_errors_naming_the_flag(flags, phrase, tmp_path, capsys):
    from pointsman.launcher.cli import main

    with pytest.raises(SystemExit):
        main(["export", "--checkpoint", str(tmp_path), "--name", "x", *flags])
    assert phrase in capsys.readouterr().err
