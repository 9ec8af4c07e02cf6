"""Chat rendering: the plain template, a checkpoint's template from its folder, refusals naming `messages`."""

from __future__ import annotations

import json

import pytest

from pointsman.engine.chat_template import PLAIN_TEMPLATE, ChatTemplate
from pointsman.errors import InvalidRequest
from pointsman.policy.contract import parse_generate, parse_router

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def test_plain_template_writes_one_role_line_per_message_then_the_answer_cue():
    assert ChatTemplate.plain().render(CHAT) == "System: Be brief.\nUser: Hi\nAssistant:"


def test_folder_without_template_gets_the_plain_one(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|endoftext|>"}))
    template = ChatTemplate.from_folder(tmp_path)
    assert template.is_plain and template.source == PLAIN_TEMPLATE


def test_folder_template_from_tokenizer_config_sees_special_tokens(tmp_path):
    source = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{{ eos_token }}{% endfor %}"
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"chat_template": source, "bos_token": {"content": "<s>"}, "eos_token": "</s>"}))
    assert ChatTemplate.from_folder(tmp_path).render(CHAT) == "<s>Be brief.</s>Hi</s>"


def test_jinja_file_wins_over_tokenizer_config(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "config"}))
    (tmp_path / "chat_template.jinja").write_text(CHATML)
    rendered = ChatTemplate.from_folder(tmp_path).render(CHAT[1:])
    assert rendered == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_named_templates_use_the_default_one(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"chat_template": [{"name": "tool_use", "template": "tools"}, {"name": "default", "template": "plain"}]}))
    assert ChatTemplate.from_folder(tmp_path).render(CHAT) == "plain"


def test_template_refusal_is_an_invalid_messages_error():
    template = ChatTemplate("{{ raise_exception('roles must alternate user/assistant') }}")
    with pytest.raises(InvalidRequest, match="invalid 'messages'.*roles must alternate"):
        template.render(CHAT)


def test_template_runs_in_a_sandbox():
    template = ChatTemplate("{{ messages.__class__.__subclasses__() }}")
    with pytest.raises(Exception, match="unsafe|access"):
        template.render(CHAT)


@pytest.mark.parametrize(("messages", "detail"), [
    ("not json", "JSON list"),
    ("[]", "JSON list"),
    (json.dumps([{"role": "wizard", "content": "x"}]), "role one of"),
    (json.dumps([{"role": "user", "content": 5}]), "content a string"),
])
def test_contract_refuses_malformed_messages_naming_the_field(messages, detail):
    with pytest.raises(InvalidRequest, match=f"invalid 'messages'.*{detail}"):
        parse_generate({"messages": messages})


def test_contract_takes_messages_instead_of_a_prompt_but_not_both():
    params = parse_router({"messages": json.dumps(CHAT)})
    assert params.text_input is None and params.prompt_text == "Be brief.\nHi"
    with pytest.raises(InvalidRequest, match="invalid 'messages': give 'messages'.*not both"):
        parse_router({"messages": json.dumps(CHAT), "text_input": "x"})
    with pytest.raises(InvalidRequest, match="invalid 'text_input': is required.*or 'messages'"):
        parse_router({"max_tokens": 3})
