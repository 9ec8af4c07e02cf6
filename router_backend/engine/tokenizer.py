"""The serving tokenizer (tokenizers' Rust implementation, no transformers) and request building.

    tok = TextTokenizer.from_file("model_repository/gpt2_stream/1/tokenizer.json")
    request = build_generation_request(params, tok, context_length=512)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pointsman.engine.chat_template import ChatTemplate
from pointsman.engine.sampling import DEFAULTABLE, SamplingParams
from pointsman.engine.scheduler import GenerationRequest
from pointsman.errors import InvalidRequest
from pointsman.policy.contract import GenerateParams, chat_messages


class TextTokenizer:
    """Encodes without the tokenizer's special-token template and prepends bos_id itself.

    Export reads from the checkpoint's tokenizer config whether a prompt starts with BOS
    (add_bos_token) and writes that id into the model's config, so the served ids equal
    what transformers' tokenizer gives for the same text.
    """

    def __init__(self, tokenizer, bos_id: int | None = None) -> None:  # tokenizers.Tokenizer
        self._tokenizer = tokenizer
        self._prefix = [] if bos_id is None else [bos_id]

    @classmethod
    def from_file(cls, path: str, bos_id: int | None = None) -> TextTokenizer:
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(path), bos_id)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Plain ids; with add_special_tokens the BOS the tokenizer config asks for (a rendered chat has its own)."""
        ids = self._tokenizer.encode(text, add_special_tokens=False).ids
        return self._prefix + ids if add_special_tokens else ids

    def decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer.decode(list(ids), skip_special_tokens=True)


def parse_token_ids(name: str, text: str) -> tuple[int, ...]:
    """Token ids from a config parameter such as "2" or "2,32000" ("" for none)."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"model parameter {name} must be token ids separated by commas (got {text!r})") from None


def build_generation_request(params: GenerateParams, tokenizer: TextTokenizer, context_length: int,
                             model: str = "model", chat: ChatTemplate | None = None,
                             defaults: Mapping[str, float] | None = None) -> GenerationRequest:
    """Tokenize (a chat rendered with the model's template first) and check it fits the context.

    defaults: the model's own penalties (sampling.model_defaults), for the ones the request leaves out.
    """
    if params.messages is not None:
        # the rendered template carries its own special tokens (as transformers' apply_chat_template)
        ids = tokenizer.encode((chat or ChatTemplate.plain()).render(chat_messages(params.messages)),
                               add_special_tokens=False)
    else:
        ids = tokenizer.encode(params.text_input or "")
    if not ids:
        raise InvalidRequest("text_input", "must encode to at least one token")
    if len(ids) >= context_length:
        raise InvalidRequest("text_input", f"prompt is {len(ids)} tokens; {model} accepts at most "
                             f"{context_length - 1} (context length {context_length})")
    if len(ids) + params.max_tokens > context_length:
        raise InvalidRequest("max_tokens", f"must be at most {context_length - len(ids)} for this "
                             f"{len(ids)}-token prompt ({model} context length {context_length})",
                             got=params.max_tokens)
    given = params.model_fields_set
    penalties = {name: getattr(params, name) if name in given else (defaults or {}).get(name, getattr(params, name))
                 for name in DEFAULTABLE}
    sampling = SamplingParams(temperature=params.temperature, top_k=params.top_k, top_p=params.top_p, seed=params.seed,
                              min_tokens=params.min_tokens, **penalties)
    return GenerationRequest(prompt_ids=tuple(ids), max_new_tokens=params.max_tokens, sampling=sampling,
                             stream=params.stream, ignore_eos=params.ignore_eos, stop=params.stop)
