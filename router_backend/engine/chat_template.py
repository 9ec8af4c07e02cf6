"""A chat (role/content messages) -> one prompt, through the checkpoint's own chat template.

    template = ChatTemplate.from_folder(Path("model_repository/gpt2/1"))
    template.render([{"role": "user", "content": "Hi"}])   # the plain template: "User: Hi", newline, "Assistant:"

Export keeps the checkpoint's tokenizer_config.json (and chat_template.jinja, where
transformers writes the template apart) in the model's version folder, so the template
travels with the model: a remote Triton renders chats the same way. Rendering follows
transformers' apply_chat_template: jinja2's immutable sandbox, trim_blocks/lstrip_blocks,
loop controls, `tojson`, `raise_exception` and `strftime_now`, the special tokens as
variables. A model without a template gets PLAIN_TEMPLATE (documented in docs/gateway.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from pointsman.errors import InvalidRequest

TEMPLATE_FILE = "chat_template.jinja"
TOKENIZER_CONFIG = "tokenizer_config.json"
SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token")

# one "Role: content" line per message, then the cue for the answer
PLAIN_TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}: {{ message['content'] }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def _raise_exception(message: str) -> None:
    from jinja2.exceptions import TemplateError

    raise TemplateError(message)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None,
            sort_keys: bool = False) -> str:
    # transformers' own filter: jinja2's escapes HTML, which a prompt must not get
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@lru_cache(maxsize=16)
def _compile(source: str):
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    # a template comes with a checkpoint: the sandbox keeps it from reaching Python objects
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env.from_string(source)


def _token_text(value: Any) -> str | None:
    if isinstance(value, Mapping):  # older configs: {"content": "<s>", "lstrip": false, ...}
        value = value.get("content")
    return value if isinstance(value, str) else None


def _template_source(config: Mapping[str, Any]) -> str | None:
    source = config.get("chat_template")
    if isinstance(source, list):  # several named templates: the default one
        named = {t.get("name"): t.get("template") for t in source if isinstance(t, Mapping)}
        source = named.get("default")
    return source if isinstance(source, str) and source.strip() else None


class ChatTemplate:
    """A compiled chat template and the special tokens it may name."""

    def __init__(self, source: str, special_tokens: Mapping[str, str] | None = None, is_plain: bool = False) -> None:
        self.source = source
        self.special_tokens = dict(special_tokens or {})
        self.is_plain = is_plain
        self._template = _compile(source)

    @classmethod
    def plain(cls) -> ChatTemplate:
        return cls(PLAIN_TEMPLATE, is_plain=True)

    @classmethod
    def from_folder(cls, folder: Path) -> ChatTemplate:
        """The template export kept in a model's version folder; the plain one if it kept none."""
        config: dict[str, Any] = {}
        config_file = folder / TOKENIZER_CONFIG
        if config_file.exists():
            config = json.loads(config_file.read_text(encoding="utf-8"))
        specials = {name: text for name in SPECIAL_TOKENS if (text := _token_text(config.get(name))) is not None}
        template_file = folder / TEMPLATE_FILE
        source = template_file.read_text(encoding="utf-8") if template_file.exists() else _template_source(config)
        if source is None:
            return cls(PLAIN_TEMPLATE, specials, is_plain=True)
        return cls(source, specials)

    def render(self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True) -> str:
        """The prompt for these messages; a template's own refusal names the `messages` field."""
        from jinja2.exceptions import TemplateError

        try:
            return self._template.render(messages=list(messages), add_generation_prompt=add_generation_prompt,
                                         tools=None, documents=None, **self.special_tokens)
        except TemplateError as exc:
            raise InvalidRequest("messages", f"the model's chat template refused them: {exc}") from None
