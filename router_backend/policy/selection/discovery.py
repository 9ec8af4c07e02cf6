"""Follow Triton's repository index: the catalog is whatever models with `pointsman.*` metadata are there.

    discovery = Discovery(catalog, fetch_config=lambda name: get_json(f"/v2/models/{name}/config"),
                          overlay_path=Path("model_repository/pointsman_models.toml"))
    ready = discovery.update(index)        # index: the /v2/repository/index answer

A model that turns READY has its served config read at once. READY routable models are
read again every `refresh_s`: a reload keeps the model READY throughout, so only a fresh
read sees its new metadata. Other READY models are read every PLAIN_REFRESH_S. A model
that leaves READY stays in the catalog, not ready, while the index still lists it (hybrid
requests then fall back with "not loaded"); it leaves the catalog when the index no
longer does. A model with broken metadata is left out; its error, naming the model and
the key, is logged and kept in `problems`. No Triton import.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pointsman.errors import CatalogError
from pointsman.policy.catalog import Catalog, ModelEntry, Signature, TensorDecl
from pointsman.policy.routing_metadata import PREFIX, entry_from_parameters, load_overlay

LOGGER = logging.getLogger(__name__)
REFRESH_S = 0.5  # re-read READY routable models' configs this often: a reload's new metadata shows within it
# a READY model without routing metadata (the router, the control models, twins) is re-read
# this often: it rarely gains metadata, and every process that follows the index reads it
PLAIN_REFRESH_S = 5.0


def signature_of(config: Mapping[str, Any]) -> Signature:
    """Declared inputs, outputs, batching and transaction policy from a served config (Triton's JSON)."""
    inputs = tuple(TensorDecl(name=t["name"], data_type=t.get("data_type", ""),
                              dims=tuple(int(d) for d in t.get("dims", [1])))
                   for t in config.get("input", []))
    return Signature(inputs=inputs, outputs=tuple(t["name"] for t in config.get("output", [])),
                     batched=int(config.get("max_batch_size", 0) or 0) > 0,
                     decoupled=bool(config.get("model_transaction_policy", {}).get("decoupled", False)))


def entry_of(model: str, config: Mapping[str, Any], overlay: Mapping[str, str] | None = None) -> ModelEntry | None:
    """A served model's catalog entry (None when it carries no routing metadata); CatalogError when broken."""
    parameters = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
    if overlay is None and not any(k.startswith(PREFIX) for k in parameters):
        return None  # the common case (the router, the control models): not even a signature to build
    return entry_from_parameters(model, parameters, signature_of(config), overlay)


class _Unread(Exception):
    """The config could not be read this time (not an error in it)."""


@dataclass
class _Seen:
    entry: ModelEntry | None
    read_at: float
    ready: bool


class Discovery:
    """Keeps `catalog` equal to the routable models in the repository index."""

    def __init__(self, catalog: Catalog, fetch_config: Callable[[str], Mapping[str, Any]],
                 overlay_path: Path | None = None, refresh_s: float = REFRESH_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.catalog = catalog
        self._fetch = fetch_config
        self._overlay_path = overlay_path
        self._overlay: dict[str, dict[str, str]] = {}
        self._overlay_stamp: tuple[int, int] | None = None
        self._refresh_s = refresh_s
        self._clock = clock
        self._seen: dict[str, _Seen] = {}  # Triton model name -> what its config said
        self.problems: dict[str, str] = {}  # Triton model name -> why it is not in the catalog

    def _reload_overlay(self) -> bool:
        """Re-read the overlay when it changed; True if it did."""
        if self._overlay_path is None:
            return False
        try:
            stat = os.stat(self._overlay_path)
            stamp = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
        if stamp == self._overlay_stamp:
            return False
        self._overlay_stamp = stamp
        try:
            self._overlay = load_overlay(self._overlay_path) if stamp else {}
            self.problems.pop(str(self._overlay_path), None)
        except CatalogError as exc:
            LOGGER.warning("%s", exc)  # keep the last good overlay
            self.problems[str(self._overlay_path)] = str(exc)
        return True

    def _read(self, model: str, now: float) -> ModelEntry | None:
        try:
            entry = entry_of(model, self._fetch(model), self._overlay.get(model))
        except CatalogError as exc:
            if self.problems.get(model) != str(exc):
                LOGGER.warning("not routing to %s: %s", model, exc)
            self.problems[model] = str(exc)
            return None
        except (OSError, ValueError, KeyError) as exc:  # unloaded between the index and the read, or a timeout
            LOGGER.debug("config of %s unavailable: %s", model, exc)
            raise _Unread from None
        self.problems.pop(model, None)
        return entry

    def update(self, index: list[dict]) -> set[str]:
        """Bring the catalog in line with the index; return the READY Triton model names."""
        now = self._clock()
        overlay_changed = self._reload_overlay()
        states = {m["name"]: m.get("state") for m in index}
        ready = {name for name, state in states.items() if state == "READY"}
        for name in ready:
            seen = self._seen.get(name)
            every = self._refresh_s if seen is None or seen.entry is not None or name in self.problems \
                else PLAIN_REFRESH_S
            if seen is None or not seen.ready or overlay_changed or now - seen.read_at >= every:
                try:
                    self._seen[name] = _Seen(self._read(name, now), now, True)
                except _Unread:
                    continue  # read again at the next poll; meanwhile it keeps what it said before
        for name, seen in list(self._seen.items()):
            if name not in states:
                del self._seen[name]  # gone from the repository
                self.problems.pop(name, None)
            elif name not in ready:
                seen.ready = False  # unloaded: keep what it said, not ready
        self._publish()
        return ready

    def _publish(self) -> None:
        entries, owners = [], {}
        for model in sorted(self._seen):
            entry = self._seen[model].entry
            if entry is None:
                continue
            if entry.name in owners:
                message = (f"model '{model}', key '{PREFIX}name': '{entry.name}' is already the name of "
                           f"model '{owners[entry.name]}'")
                if self.problems.get(model) != message:
                    LOGGER.warning("not routing to %s: %s", model, message)
                self.problems[model] = message
                continue
            owners[entry.name] = model
            entries.append(entry)
        if [e for e in self.catalog] != entries:
            self.catalog.replace(entries)
