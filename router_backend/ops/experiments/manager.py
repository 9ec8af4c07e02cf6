"""Experiments at run time: assignment for the router, and the actions of the experiments model.

    manager = ExperimentManager(open_store(), known_models={"gpt2", "distilgpt2"})
    assignment = manager.assign("auto", "creative", user="alice")   # Assignment or None
    manager.handle("pause", '{"name": "creative-small"}')

Several processes, and replicas sharing a PostgreSQL store, share the experiments through
the store: each manager keeps the active ones in memory and reloads them when the store's
experiments version moves, checking once per refresh_s, so assign() stays a memory
lookup. The router calls start_polling(): the check then runs on a thread of its own, and
a slow or unreachable database never delays a request (the loaded experiments stay).
A change made through any replica is therefore applied everywhere within refresh_s plus
one query.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pointsman.errors import InvalidRequest
from pointsman.ops.experiments.assignment import Assignment, pick_arm, user_bucket
from pointsman.ops.experiments.definition import ExperimentDef, load_experiments_file, parse_experiment
from pointsman.ops.experiments.report import build_report
from pointsman.ops.usage.storage import STORE_ERRORS, ExperimentRow, Store

LOGGER = logging.getLogger(__name__)
ACTIONS = ("create", "pause", "resume", "stop", "list", "report", "feedback")
_NAME_ONLY = {"name": "the experiment's name"}
_PAYLOAD_FIELDS: dict[str, dict[str, str]] = {
    "pause": _NAME_ONLY, "resume": _NAME_ONLY, "stop": _NAME_ONLY, "report": _NAME_ONLY, "list": {},
    "feedback": {"request_id": "the id of a router request", "score": "a finite number (higher is better)"},
}


def _dump(experiment: ExperimentDef) -> dict:
    return experiment.model_dump(mode="json")


class ExperimentManager:
    def __init__(self, store: Store, *, known_models: set[str] | Callable[[], set[str]] | None = None,
                 refresh_s: float = 1.0, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None) -> None:
        self.store = store
        # a callable: the models the repository has now (they come and go at run time)
        self._known_models = known_models if callable(known_models) or known_models is None else set(known_models)
        self.refresh_s = refresh_s
        self._clock = clock
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._active: tuple[ExperimentDef, ...] = ()
        self._version: int | None = None
        self._checked_at = -math.inf
        self._stop_polling: threading.Event | None = None
        self._pending_seed: tuple[list[ExperimentDef], str | Path] | None = None
        self._refresh(force=True)

    def start_polling(self) -> None:
        """Check the store for changes every refresh_s on a daemon thread, off the request path."""
        if self._stop_polling is not None:
            return
        self._stop_polling = threading.Event()
        threading.Thread(target=self._poll, args=(self._stop_polling,), name="pointsman-experiments-poll",
                         daemon=True).start()

    def close(self) -> None:
        if self._stop_polling is not None:
            self._stop_polling.set()

    def _poll(self, stop: threading.Event) -> None:
        while not stop.wait(self.refresh_s):
            self._refresh()

    # the router's side ------------------------------------------------------------------
    def assign(self, selection_mode: str, task: str | None, user: str | None) -> Assignment | None:
        """The arm of the first active experiment whose filter matches, or None.

        Call with task None before prompt analysis (policy experiments match then), and
        again with the task after it when that first call gave None.
        """
        if self._stop_polling is None and self._clock() - self._checked_at >= self.refresh_s:
            self._refresh()
        for experiment in self._active:
            if experiment.filter.matches(selection_mode, task):
                u = user_bucket(experiment.name, user) if user else self._rng.random()
                arm = pick_arm(experiment.arms, u)
                return Assignment(experiment.name, arm.name, arm.model, arm.policy, sticky=bool(user))
        return None

    def _refresh(self, force: bool = False) -> None:
        with self._lock:
            self._checked_at = self._clock()
            try:
                version = self.store.experiments_version()
                if version == self._version and not force:
                    return
                rows = self.store.experiments()
            except STORE_ERRORS as exc:
                LOGGER.warning("could not read experiments from %s (%s); keeping the ones loaded",
                               self.store.location, exc)
                return
            active = []
            for row in rows:
                if row.status == "active":
                    try:
                        active.append(ExperimentDef.model_validate(row.definition))
                    except ValueError:
                        LOGGER.error("experiment %s in %s is malformed; skipped", row.name, self.store.location)
            self._active, self._version = tuple(active), version

    @property
    def known_models(self) -> set[str] | None:
        known = self._known_models
        return known() if callable(known) else known

    # management -------------------------------------------------------------------------
    def seed(self, path: str | Path) -> list[str]:
        """Add the file's experiments that the store does not have yet; the store's copy wins.

        A malformed file raises at once. An unreachable database does not: the file is
        checked, and its experiments are added by the first action once the database is back.
        """
        # a live model list may not hold the file's models yet (they load beside this one): not checked then
        experiments = load_experiments_file(path, None if callable(self._known_models) else self.known_models)
        try:
            added = self._seed(experiments, path)
        except STORE_ERRORS as exc:
            LOGGER.warning("could not add the experiments of %s to %s yet (%s); retrying on the next action",
                           path, self.store.location, exc)
            self._pending_seed = (experiments, path)
            return []
        self._pending_seed = None
        return added

    def _seed(self, experiments: list[ExperimentDef], path: str | Path) -> list[str]:
        added = []
        for experiment in experiments:
            if self.store.insert_experiment(experiment.name, _dump(experiment), experiment.status, "file",
                                            self._clock()):
                added.append(experiment.name)
                continue
            existing = self.store.experiment(experiment.name)
            if existing is not None and existing.definition != _dump(experiment):
                LOGGER.warning("experiment %s in %s differs from the one stored in %s; the stored one is kept "
                               "(rename it to start a new experiment)", experiment.name, path, self.store.location)
        self._refresh(force=True)
        return added

    def create(self, data: Any) -> dict:
        experiment = parse_experiment(data, self.known_models)
        if not self.store.insert_experiment(experiment.name, _dump(experiment), experiment.status, "runtime",
                                            self._clock()):
            row = self.store.experiment(experiment.name)
            raise InvalidRequest("payload.name", f"experiment {experiment.name!r} exists (status "
                                                 f"{row.status if row else 'unknown'}); choose another name")
        self._refresh(force=True)
        return self._describe(self._row(experiment.name))

    def pause(self, name: str) -> dict:
        return self._transition(name, "paused")

    def resume(self, name: str) -> dict:
        return self._transition(name, "active")

    def stop(self, name: str) -> dict:
        return self._transition(name, "stopped")

    def _transition(self, name: str, status: str) -> dict:
        row = self._row(name)
        if row.status == "stopped" and status != "stopped":
            raise InvalidRequest("payload.name", f"experiment {name!r} is stopped; a stopped experiment cannot be "
                                                 f"paused or resumed (create a new one)")
        if row.status != status:
            self.store.set_experiment_status(name, status, self._clock())
            self._refresh(force=True)
        return self._describe(self._row(name))

    def list(self) -> list[dict]:
        return [self._describe(row) for row in self.store.experiments()]

    def report(self, name: str) -> dict:
        row = self._row(name)
        experiment = ExperimentDef.model_validate(row.definition)
        report = build_report(experiment, row.status, self.store.records(experiment=name), self.store.feedback(name))
        final = report["decision"]["state"] in ("winner", "no_difference")
        if final and experiment.stopping.auto_stop and row.status == "active":
            self._transition(name, "stopped")
            report["status"] = "stopped"
            report["decision"]["auto_stopped"] = True
        return report

    def feedback(self, request_id: str, score: float) -> dict:
        self.store.put_feedback(request_id, score, self._clock())
        return {"request_id": request_id, "score": score, "matched": self.store.has_request(request_id)}

    def _row(self, name: str) -> ExperimentRow:
        row = self.store.experiment(name)
        if row is None:
            known = ", ".join(r.name for r in self.store.experiments()) or "none"
            raise InvalidRequest("payload.name", f"unknown experiment {name!r}; known experiments: {known}")
        return row

    def _describe(self, row: ExperimentRow) -> dict:
        counts = self.store.arm_counts(row.name)
        definition = row.definition
        return {"name": row.name, "status": row.status, "source": row.source,
                "description": definition.get("description", ""), "filter": definition.get("filter"),
                "arms": [{k: v for k, v in arm.items() if v is not None} | {"requests": counts.get(arm["name"], 0)}
                         for arm in definition["arms"]],
                "stopping": definition.get("stopping"), "created_at": row.created_at, "updated_at": row.updated_at}

    # the experiments model's entry point ------------------------------------------------
    def handle(self, action: Any, payload: Any = None) -> Any:
        """Run one action with its JSON payload (text or already decoded); errors name the field."""
        if action not in ACTIONS:
            raise InvalidRequest("action", f"must be one of {', '.join(ACTIONS)}", got=action)
        if self._pending_seed is not None:  # the database was away at load; a StoreError here is the caller's answer
            self._seed(*self._pending_seed)
            self._pending_seed = None
        data = _decode_payload(payload)
        if action == "create":
            return self.create(data)
        fields = _check_fields(action, data)
        if action == "list":
            return {"experiments": self.list()}
        if action == "feedback":
            return self.feedback(fields["request_id"], fields["score"])
        return getattr(self, action)(fields["name"])


def _decode_payload(payload: Any) -> Any:
    if payload is None or payload == "":
        return {}
    if isinstance(payload, (bytes, str)):
        try:
            return json.loads(payload)
        except ValueError as exc:
            raise InvalidRequest("payload", f"must be JSON text ({exc})") from None
    return payload


def _check_fields(action: str, data: Any) -> dict[str, Any]:
    accepted = _PAYLOAD_FIELDS[action]
    shape = "{" + ", ".join(f'"{k}": ...' for k in accepted) + "}"
    if not isinstance(data, Mapping):
        raise InvalidRequest("payload", f"must be a JSON object {shape} for action {action}")
    for key in data:
        if key not in accepted:
            listed = ", ".join(accepted) or "none"
            raise InvalidRequest(f"payload.{key}", f"unknown field for action {action}; accepted fields: {listed}")
    for key, hint in accepted.items():
        value = data.get(key)
        if key == "score":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InvalidRequest("payload.score", f"is required: {hint}", got=value)
        elif not isinstance(value, str) or not value:
            raise InvalidRequest(f"payload.{key}", f"is required: {hint} (a non-empty string)", got=value)
    return dict(data)
