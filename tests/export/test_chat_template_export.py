"""Export keeps a checkpoint's chat template with the model, and it renders as transformers renders it.

    .venv/bin/pytest tests/export/test_chat_template_export.py -q
"""

from __future__ import annotations

import io

import pytest

pytest.importorskip("transformers")

from rich.console import Console

from pointsman.engine.chat_template import ChatTemplate
from pointsman.export.pipeline import export_model
from pointsman.export.repository import engine_name

# a ChatML-style template with a system default, a loop control and a refusal, as real ones have
TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are helpful.<|im_end|>\n' }}{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unknown role ' + message['role']) }}{% endif %}"
    "{% if message['content'] == '' %}{% continue %}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] | trim + '<|im_end|>' + eos_token + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CHATS = [
    [{"role": "user", "content": "What is 2 + 2?"}],
    [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "  Hello  "},
     {"role": "assistant", "content": ""}, {"role": "user", "content": "Encore"}],
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from pointsman.export.demo_models import train_tokenizer

    out = tmp_path_factory.mktemp("chat-checkpoint")
    tokenizer = train_tokenizer(["Hello there, how are you?\n", "def f(x):\n    return x\n"] * 4, out / "tok")
    tokenizer.chat_template = TEMPLATE
    torch.manual_seed(0)
    eos = tokenizer.eos_token_id
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=32, n_embd=16, n_layer=1, n_head=2,
                               bos_token_id=eos, eos_token_id=eos)).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out, tokenizer


@pytest.mark.parametrize("chat", CHATS, ids=["user-only", "system-and-turns"])
def test_exported_model_folder_renders_chats_as_transformers_does(checkpoint, chat, tmp_path):
    folder, tokenizer = checkpoint
    export_model(folder, "tiny-chat", tmp_path, console=Console(file=io.StringIO()))

    template = ChatTemplate.from_folder(tmp_path / engine_name("tiny-chat") / "1")

    assert not template.is_plain
    expected = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert template.render(chat) == expected
