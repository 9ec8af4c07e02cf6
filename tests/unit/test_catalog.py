"""The model catalog: the shipped file loads; a malformed entry names the entry and the field."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import tomllib

from pointsman.errors import CatalogError
from pointsman.policy.catalog import DEFAULT_CATALOG, TASKS, load_catalog, parse_catalog

SHIPPED = tomllib.loads(DEFAULT_CATALOG.read_text())


def test_shipped_catalog_loads_the_three_demo_models() -> None:
    catalog = load_catalog()
    assert catalog.names == ["gpt2", "distilgpt2", "codegen"]
    assert all(set(entry.specialization_score) == set(TASKS) for entry in catalog)
    assert catalog["codegen"].specialization_score["coding"] == max(
        e.specialization_score["coding"] for e in catalog)
    assert "gpt2" in catalog and "gpt-5" not in catalog


def edited(change: Callable[[list[dict[str, Any]]], None]) -> dict:
    data = copy.deepcopy(SHIPPED)
    change(data["models"])
    return data


@pytest.mark.parametrize(("change", "entry", "field"), [
    (lambda m: m[0].pop("context_length"), "gpt2", "context_length"),
    (lambda m: m[1].pop("family"), "distilgpt2", "family"),
    (lambda m: m[2]["specialization_score"].update(poetry=0.5), "codegen", "specialization_score"),
    (lambda m: m[2]["specialization_score"].pop("qa"), "codegen", "specialization_score"),
    (lambda m: m[0]["specialization_score"].update(coding=1.5), "gpt2", "specialization_score"),
    (lambda m: m[0].update(quality_prior=-0.1), "gpt2", "quality_prior"),
    (lambda m: m[1].update(context_length=0), "distilgpt2", "context_length"),
    (lambda m: m[1].update(family="llama"), "distilgpt2", "family"),
    (lambda m: m[1].update(capabilities=["general", "juggling"]), "distilgpt2", "capabilities"),
    (lambda m: m[0].update(tokens_per_second_prior="fast"), "gpt2", "tokens_per_second_prior"),
    (lambda m: m[0].update(colour="red"), "gpt2", "colour"),
    (lambda m: m[0].update(name="has space"), "has space", "name"),
    (lambda m: m[2].update(name="gpt2"), "gpt2", "name"),  # duplicate
    (lambda m: m[1].pop("name"), "#1", "name"),
])
def test_malformed_entry_names_the_entry_and_the_field(change, entry: str, field: str) -> None:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(edited(change))
    assert f"entry '{entry}'" in str(caught.value)
    assert f"field '{field}" in str(caught.value)


def test_duplicate_name_says_so() -> None:
    with pytest.raises(CatalogError, match="duplicate name"):
        parse_catalog(edited(lambda m: m[2].update(name="gpt2")))


@pytest.mark.parametrize("data", [{}, {"models": []}, {"models": "gpt2"}])
def test_catalog_without_models_is_rejected(data: dict) -> None:
    with pytest.raises(CatalogError, match="'models' must be a non-empty list"):
        parse_catalog(data)


@pytest.mark.parametrize(("text", "says"), [("[[models]\nname=", "catalog"), (None, "catalog")])
def test_unreadable_catalog_file_raises_catalog_error(tmp_path, text: str | None, says: str) -> None:
    path = tmp_path / "catalog.toml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(CatalogError, match=says):
        load_catalog(path)
