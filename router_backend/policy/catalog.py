"""The catalog of routable language models: what each is and what it is good at.

    catalog = Catalog(entries_from_repository(...))   # see pointsman.policy.selection.discovery
    catalog["codegen"].specialization_score["coding"]

The package carries no model list: every entry comes from a served model's own
config.pbtxt (`pointsman.*` parameters, pointsman.policy.routing_metadata) and changes
while the server runs. `Catalog.replace` swaps the entries atomically, so every holder
of the one Catalog object (selector, scoring, catalog and recommend models) sees the
models that are there now.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pointsman.errors import CatalogError

TASKS = ("coding", "creative", "qa", "reasoning")
CAPABILITIES = ("general",) + TASKS
INTERFACES = ("pointsman", "tensorrtllm", "vllm")
DEFAULT_TOKENS_PER_SECOND = 100.0  # the pace assumed before a model without a speed prior is measured


class TensorDecl(BaseModel):
    """One input a model declares in its config (name, Triton data type, dims without the batch)."""

    model_config = ConfigDict(frozen=True)

    name: str
    data_type: str
    dims: tuple[int, ...] = (1,)


class Signature(BaseModel):
    """The model's declared inputs and outputs, as its served config says: the router forwards only these."""

    model_config = ConfigDict(frozen=True)

    inputs: tuple[TensorDecl, ...] = ()
    outputs: tuple[str, ...] = ()
    batched: bool = False  # max_batch_size > 0: every tensor carries a leading batch dimension
    decoupled: bool = True

    def input(self, name: str) -> TensorDecl | None:
        return next((t for t in self.inputs if t.name == name), None)


class ModelEntry(BaseModel):
    """One routable model: what it is and what it is good at (priors, not measurements)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")  # what callers say: selected_model, manual `model`
    # the Triton model the router calls (decoupled, so streaming passes through) and whose
    # readiness and load it follows; default: the name itself
    engine_model: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$")
    interface: Literal["pointsman", "tensorrtllm", "vllm"] = "pointsman"
    family: str | None = None
    capabilities: tuple[Literal["general", "coding", "creative", "qa", "reasoning"], ...]
    context_length: int = Field(gt=0)
    specialization_score: dict[str, float]
    quality_prior: float = Field(ge=0.0, le=1.0)
    tokens_per_second_prior: float | None = Field(default=None, gt=0.0)
    time_to_first_token_prior: float | None = Field(default=None, gt=0.0)
    # the model whose engine metrics carry this one's load (TensorRT-LLM: the `tensorrt_llm` model
    # behind an ensemble or tensorrt_llm_bls); default: the engine model
    metrics_model: str | None = None
    signature: Signature | None = None

    @field_validator("specialization_score")
    @classmethod
    def _every_task_scored(cls, scores: dict[str, float]) -> dict[str, float]:
        missing = [t for t in TASKS if t not in scores]
        unknown = [t for t in scores if t not in TASKS]
        if missing or unknown:
            raise ValueError(f"needs exactly the tasks {', '.join(TASKS)} (missing {missing}, unknown {unknown})")
        bad = {t: s for t, s in scores.items() if not 0.0 <= s <= 1.0}
        if bad:
            raise ValueError(f"scores must be in [0, 1], got {bad}")
        return scores

    @property
    def call_name(self) -> str:
        """The Triton model behind this entry: engine_model, else the name itself."""
        return self.engine_model or self.name

    @property
    def metrics_name(self) -> str:
        return self.metrics_model or self.call_name

    @property
    def pace_prior(self) -> float:
        """The speed prior, or the default pace when the model declares none."""
        return self.tokens_per_second_prior or DEFAULT_TOKENS_PER_SECOND


class Catalog:
    """Entries by name, in discovery order; replaced as a whole when models come and go."""

    def __init__(self, entries: Iterable[ModelEntry] = ()) -> None:
        self._lock = threading.Lock()
        self._entries: Mapping[str, ModelEntry] = {e.name: e for e in entries}

    def replace(self, entries: Iterable[ModelEntry]) -> None:
        fresh = {e.name: e for e in entries}
        with self._lock:
            self._entries = fresh  # one reference swap: readers see the old or the new set, whole

    def get(self, name: str) -> ModelEntry | None:
        return self._entries.get(name)

    def __getitem__(self, name: str) -> ModelEntry:
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def names(self) -> list[str]:
        return list(self._entries)


def parse_catalog(data: dict) -> Catalog:
    """A catalog from plain data ({"models": [entry, ...]}), for tests and benchmarks; errors name entry and field."""
    raw = data.get("models")
    if not isinstance(raw, list) or not raw:
        raise CatalogError("catalog: 'models' must be a non-empty list of entries")
    entries, seen = [], set()
    for index, item in enumerate(raw):
        label = item.get("name", f"#{index}") if isinstance(item, dict) else f"#{index}"
        try:
            entry = ModelEntry.model_validate(item)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "entry"
            raise CatalogError(f"catalog entry '{label}', field '{where}': {err['msg']}") from None
        if entry.name in seen:
            raise CatalogError(f"catalog entry '{label}', field 'name': duplicate name")
        seen.add(entry.name)
        entries.append(entry)
    return Catalog(entries)
