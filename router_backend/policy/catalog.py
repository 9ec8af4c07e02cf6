"""The catalog of served language models, read by export and by the router.

    catalog = load_catalog()           # router_backend/catalog.toml
    catalog["codegen"].specialization_score["coding"]
"""

from __future__ import annotations

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (the nvcr Triton image's Python)
    import tomli as tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pointsman.errors import CatalogError

TASKS = ("coding", "creative", "qa", "reasoning")
CAPABILITIES = ("general",) + TASKS
DEFAULT_CATALOG = Path(__file__).with_name("catalog.toml")


class ModelEntry(BaseModel):
    """One served model: what it is and what it is good at (priors, not measurements)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")  # what callers say: selected_model, manual `model`
    # the Triton model the router calls (decoupled, so streaming passes through) and whose
    # readiness and load it follows; a vLLM or TensorRT-LLM model is called by its own name
    engine_model: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$")
    family: Literal["gpt2", "codegen"]
    checkpoint: str
    capabilities: tuple[Literal["general", "coding", "creative", "qa", "reasoning"], ...]
    context_length: int = Field(gt=0)
    specialization_score: dict[str, float]
    quality_prior: float = Field(ge=0.0, le=1.0)
    tokens_per_second_prior: float = Field(gt=0.0)

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


class Catalog:
    """Entries by name, in file order."""

    def __init__(self, entries: list[ModelEntry]) -> None:
        self._entries = {e.name: e for e in entries}

    def __getitem__(self, name: str) -> ModelEntry:
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self._entries.values())

    @property
    def names(self) -> list[str]:
        return list(self._entries)


def parse_catalog(data: dict) -> Catalog:
    """Validate catalog data; the error names the entry and the field."""
    raw = data.get("models")
    if not isinstance(raw, list) or not raw:
        raise CatalogError("catalog: 'models' must be a non-empty list of [[models]] tables")
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


def load_catalog(path: str | Path = DEFAULT_CATALOG) -> Catalog:
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"catalog {path}: {exc}") from None
    return parse_catalog(data)
