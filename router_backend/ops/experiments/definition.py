"""What an experiment is: a filter on router traffic, weighted arms, a stopping rule; validated.

    experiment = parse_experiment({"name": "creative-small", "filter": {"task": "creative"},
                                   "arms": [{"name": "gpt2", "model": "gpt2", "weight": 50},
                                            {"name": "distil", "model": "distilgpt2", "weight": 50}]})

Experiments only replace auto-selection: a manual request named its model and a hybrid
request whose preferred model is ready got it, so neither is ever part of one. An arm is a
model (the router uses it instead of scoring) or a prompt-analysis policy (the analyser
auto-selection uses); the arms of one experiment are all of one kind.
"""

from __future__ import annotations

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (the nvcr Triton image's Python)
    import tomli as tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pointsman.errors import InvalidRequest, PointsmanError
from pointsman.policy.catalog import TASKS

POLICIES = ("lexical", "classifier")
EXPERIMENT_MODES = ("auto", "hybrid")  # hybrid: only requests that fell back to auto-selection
STATUSES = ("active", "paused", "stopped")
# metric -> which direction is better. Quality is compared on feedback only: mean_logprob
# is each model's likelihood of its own output, which says nothing across models, so it is
# reported per arm (DESCRIPTIVE) and never tested or used to stop.
METRICS: dict[str, str] = {"duration_s": "lower", "ttft_s": "lower", "tokens_per_s": "higher",
                           "feedback": "higher", "error_rate": "lower"}
DESCRIPTIVE = ("mean_logprob",)
NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"

_HINTS = {
    "name": "1-64 letters, digits, '.', '_' or '-'",
    "weight": "a number > 0 (weights are relative)",
    "model": "the name of a served model",
    "policy": f"one of {', '.join(POLICIES)}",
    "task": f"one or a list of {', '.join(TASKS)}",
    "selection_mode": f"one or a list of {', '.join(EXPERIMENT_MODES)}",
    "metric": f"one of {', '.join(METRICS)}",
    "min_samples_per_arm": "an integer >= 2",
    "max_samples_per_arm": "an integer >= min_samples_per_arm",
    "alpha": "a number in (0, 0.5]",
    "min_effect": "a number in (0, 10]: the smallest difference worth detecting, relative to the control",
    "auto_stop": "true or false",
    "status": "active or paused",
    "arms": "a list of 2 to 10 arms, each {name, weight, model or policy}",
    "description": "a string",
}


class ExperimentFileError(PointsmanError):
    """The experiments file is unreadable or declares a malformed experiment."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ArmDef(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    weight: float = Field(1.0, gt=0.0, allow_inf_nan=False)
    model: str | None = Field(None, min_length=1)
    policy: Literal["lexical", "classifier"] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ArmDef:
        if (self.model is None) == (self.policy is None):
            raise ValueError("model: an arm names exactly one of model or policy")
        return self


def _as_tuple(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


class FilterDef(_Strict):
    task: tuple[Literal["coding", "creative", "qa", "reasoning"], ...] = ()  # empty: every task
    selection_mode: tuple[Literal["auto", "hybrid"], ...] = ("auto",)

    _task_list = field_validator("task", "selection_mode", mode="before")(_as_tuple)

    def matches(self, selection_mode: str, task: str | None) -> bool:
        """Match a request; task None means not analysed yet: only a filter without tasks can match it."""
        if selection_mode not in self.selection_mode:
            return False
        return not self.task or (task is not None and task in self.task)


class StoppingDef(_Strict):
    metric: Literal["duration_s", "ttft_s", "tokens_per_s", "feedback", "error_rate"] = "duration_s"
    min_samples_per_arm: int = Field(30, ge=2)  # also the sequential test's burn-in (plug-in variances)
    max_samples_per_arm: int = Field(1000, ge=2)
    alpha: float = Field(0.05, gt=0.0, le=0.5)
    # the smallest difference worth detecting, as a share of the control's scale
    # (max(|mean|, standard deviation)): the mSPRT mixture's scale and the power target
    min_effect: float = Field(0.1, gt=0.0, le=10.0)
    auto_stop: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> StoppingDef:
        if self.max_samples_per_arm < self.min_samples_per_arm:
            raise ValueError("max_samples_per_arm: must be >= min_samples_per_arm")
        return self


class ExperimentDef(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    status: Literal["active", "paused"] = "active"  # the status it starts in
    filter: FilterDef = FilterDef()
    arms: tuple[ArmDef, ...] = Field(min_length=2, max_length=10)
    stopping: StoppingDef = StoppingDef()

    @model_validator(mode="after")
    def _coherent(self) -> ExperimentDef:
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arms: arm names must be unique, got {names}")
        if len({a.model is None for a in self.arms}) != 1:
            raise ValueError("arms: must all name a model or all name a policy")
        if self.is_policy_experiment and self.filter.task:
            raise ValueError("filter.task: a policy experiment cannot filter on task: the task is what the policy "
                             "decides")
        return self

    @property
    def is_policy_experiment(self) -> bool:
        return self.arms[0].policy is not None

    def arm(self, name: str) -> ArmDef | None:
        return next((a for a in self.arms if a.name == name), None)


def _explain(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    last = next((str(p) for p in reversed(err["loc"]) if isinstance(p, str)), "")
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "value_error":  # our own validators start their message with the field they judge
        field, _, msg = msg.partition(": ")
        parent = ".".join(str(p) for p in err["loc"] if isinstance(p, (str, int)))
        return ".".join(x for x in (parent, field) if x), msg
    if err["type"] == "extra_forbidden":
        owner = {"arms": ArmDef, "filter": FilterDef, "stopping": StoppingDef}.get(str(err["loc"][0]), ExperimentDef)
        if len(err["loc"]) == 1:
            owner = ExperimentDef
        return loc, f"unknown field; accepted fields: {', '.join(owner.model_fields)}"
    hint = _HINTS.get(last)
    return loc, f"{msg} (accepted: {hint})" if hint else msg


def parse_experiment(data: Any, known_models: set[str] | None = None, where: str = "payload") -> ExperimentDef:
    """Validate one experiment; InvalidRequest names the field, e.g. payload.arms.1.weight."""
    if not isinstance(data, Mapping):
        raise InvalidRequest(where, "must be a JSON object describing an experiment: "
                                    "{name, arms: [{name, weight, model|policy}], filter?, stopping?}")
    try:
        experiment = ExperimentDef.model_validate(dict(data))
    except ValidationError as exc:
        loc, msg = _explain(exc)
        raise InvalidRequest(f"{where}.{loc}" if loc else where, msg) from None
    if known_models is not None:
        for index, arm in enumerate(experiment.arms):
            if arm.model is not None and arm.model not in known_models:
                raise InvalidRequest(f"{where}.arms.{index}.model",
                                     f"unknown model {arm.model!r}; known models: {', '.join(sorted(known_models))}")
    return experiment


def load_experiments_file(path: str | Path, known_models: set[str] | None = None) -> list[ExperimentDef]:
    """The [[experiments]] tables of a TOML file; a missing file declares none."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ExperimentFileError(f"experiments file {path}: {exc}") from None
    raw = data.get("experiments", [])
    if not isinstance(raw, list):
        raise ExperimentFileError(f"experiments file {path}: 'experiments' must be a list of [[experiments]] tables")
    out, seen = [], set()
    for index, item in enumerate(raw):
        label = item.get("name", f"#{index}") if isinstance(item, dict) else f"#{index}"
        try:
            experiment = parse_experiment(item, known_models, where=f"experiments[{index}]")
        except InvalidRequest as exc:
            raise ExperimentFileError(f"experiments file {path}, experiment '{label}': {exc}") from None
        if experiment.name in seen:
            raise ExperimentFileError(f"experiments file {path}, experiment '{label}': duplicate name")
        seen.add(experiment.name)
        out.append(experiment)
    return out
