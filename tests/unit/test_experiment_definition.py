"""Experiment definitions: valid ones parse; each malformed one is refused naming its field."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from pointsman.errors import InvalidRequest
from pointsman.export.demo_models import demo_catalog
from pointsman.ops.experiments.definition import ExperimentFileError, load_experiments_file, parse_experiment
from pointsman.ops.experiments.manager import ExperimentManager

SHIPPED_EXPERIMENTS = Path(__file__).resolve().parents[2] / "model_repository" / "experiments" / "experiments.toml"
MODELS = {"gpt2", "distilgpt2", "codegen"}
VALID = {"name": "creative-small", "filter": {"task": "creative"},
         "arms": [{"name": "gpt2", "model": "gpt2", "weight": 50}, {"name": "distil", "model": "distilgpt2",
                                                                     "weight": 50}]}
POLICY = {"name": "analysers", "filter": {"selection_mode": ["auto", "hybrid"]},
          "arms": [{"name": "lex", "policy": "lexical"}, {"name": "clf", "policy": "classifier", "weight": 3}]}


def changed(base: dict, edit) -> dict:
    data = copy.deepcopy(base)
    edit(data)
    return data


def test_valid_experiments_parse_with_defaults() -> None:
    model_exp = parse_experiment(VALID, MODELS)
    assert model_exp.filter.task == ("creative",) and model_exp.filter.selection_mode == ("auto",)
    assert model_exp.stopping.metric == "duration_s" and model_exp.stopping.alpha == 0.05
    policy_exp = parse_experiment(POLICY, MODELS)
    assert policy_exp.is_policy_experiment and policy_exp.arms[0].weight == 1.0


@pytest.mark.parametrize(("edit", "field", "phrase"), [
    (lambda d: d.pop("name"), "payload.name", "Field required"),
    (lambda d: d.update(name="has space"), "payload.name", "letters, digits"),
    (lambda d: d.update(nmae="x"), "payload.nmae", "accepted fields: name, description"),
    (lambda d: d["arms"].pop(), "payload.arms", "at least 2"),
    (lambda d: d["arms"][1].update(weight=0), "payload.arms.1.weight", "greater than 0"),
    (lambda d: d["arms"][1].update(weight="half"), "payload.arms.1.weight", "number"),
    (lambda d: d["arms"][0].update(wieght=1), "payload.arms.0.wieght", "accepted fields: name, weight, model, policy"),
    (lambda d: d["arms"][0].update(policy="lexical"), "payload.arms.0.model", "exactly one of model or policy"),
    (lambda d: d["arms"][0].pop("model"), "payload.arms.0.model", "exactly one of model or policy"),
    (lambda d: d["arms"][1].update(name="gpt2"), "payload.arms", "unique"),
    (lambda d: d["arms"][1].update(model="llama"), "payload.arms.1.model", "known models: codegen, distilgpt2, gpt2"),
    (lambda d: d["arms"][1].update(model=None, policy="lexical"), "payload.arms", "all name a model or all"),
    (lambda d: d["filter"].update(task="poetry"), "payload.filter.task.0", "coding, creative, qa, reasoning"),
    (lambda d: d["filter"].update(selection_mode="manual"), "payload.filter.selection_mode.0", "auto"),
    (lambda d: d["filter"].update(user="x"), "payload.filter.user", "accepted fields: task, selection_mode"),
    (lambda d: d.update(stopping={"metric": "speed"}), "payload.stopping.metric", "duration_s"),
    (lambda d: d.update(stopping={"alpha": 0.9}), "payload.stopping.alpha", "(0, 0.5]"),
    (lambda d: d.update(stopping={"min_samples_per_arm": 50, "max_samples_per_arm": 10}),
     "payload.stopping.max_samples_per_arm", ">= min_samples_per_arm"),
    (lambda d: d.update(status="stopped"), "payload.status", "active or paused"),
])
def test_malformed_experiment_is_refused_naming_the_field(edit, field, phrase) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_experiment(changed(VALID, edit), MODELS)
    assert err.value.field == field
    assert phrase in str(err.value)


def test_policy_experiment_cannot_filter_on_task() -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_experiment(changed(POLICY, lambda d: d["filter"].update(task="qa")), MODELS)
    assert err.value.field == "payload.filter.task" and "the task is what the policy decides" in str(err.value)


@pytest.mark.parametrize("payload", [[1, 2], "name", None])
def test_payload_must_be_an_object(payload) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_experiment(payload)
    assert err.value.field == "payload"


@pytest.mark.parametrize(("mode", "task", "task_filter", "modes", "matches"), [
    ("auto", "creative", ("creative",), ("auto",), True),
    ("auto", "coding", ("creative",), ("auto",), False),
    ("auto", None, ("creative",), ("auto",), False),  # not analysed yet: only task-free filters match
    ("auto", None, (), ("auto",), True),
    ("hybrid", "creative", ("creative",), ("auto",), False),
    ("hybrid", "creative", (), ("auto", "hybrid"), True),
    ("manual", "", (), ("auto", "hybrid"), False),
])
def test_filter_matching(mode, task, task_filter, modes, matches) -> None:
    data = changed(VALID, lambda d: d.update(filter={"task": list(task_filter), "selection_mode": list(modes)}))
    assert parse_experiment(data).filter.matches(mode, task) is matches


def test_shipped_experiments_file_parses_against_the_demo_models() -> None:
    [experiment] = load_experiments_file(SHIPPED_EXPERIMENTS, set(demo_catalog().names))
    assert [a.model for a in experiment.arms] == ["gpt2", "distilgpt2"]
    assert [a.weight for a in experiment.arms] == [50, 50] and experiment.filter.task == ("creative",)


@pytest.mark.parametrize(("text", "phrase"), [
    ("[[experiments]]\nname = 'a'\n", "experiment 'a': invalid 'experiments[0].arms'"),
    ("experiments = 3\n", "must be a list"),
    ("[[experiments\n", "experiments file"),
    ("[[experiments]]\nname='a'\narms=[{name='x',model='gpt2'},{name='y',model='gpt2'}]\n" * 2, "duplicate name"),
])
def test_malformed_file_names_the_experiment_and_field(tmp_path, text, phrase) -> None:
    path = tmp_path / "experiments.toml"
    path.write_text(text)
    with pytest.raises(ExperimentFileError) as err:
        load_experiments_file(path, MODELS)
    assert phrase in str(err.value)


def test_missing_file_declares_nothing(tmp_path, state_store) -> None:
    assert load_experiments_file(tmp_path / "none.toml") == []
    assert ExperimentManager(state_store).seed(tmp_path / "none.toml") == []
