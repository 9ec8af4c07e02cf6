"""Suggestion rules: each fires on data crafted to trigger it, cites its numbers, stays quiet below threshold."""

from __future__ import annotations

import pytest

from pointsman.export.demo_models import demo_catalog
from pointsman.ops.usage.suggestions import Thresholds, specialists_from_catalog, suggest

SPECIALISTS = {"coding": "codegen", "creative": "gpt2"}


def rules(found: list[dict]) -> list[str]:
    return [s["rule"] for s in found]


def coding_traffic(make_record, to_gpt2: int, to_codegen: int, busy: dict[str, int] | None, **extra) -> list:
    out = [make_record(task="coding", selected_model="gpt2", candidates_busy=busy, **extra) for _ in range(to_gpt2)]
    out += [make_record(task="coding", selected_model="codegen", candidates_busy={"codegen": 0, "gpt2": 0})
            for _ in range(to_codegen)]
    return out


def test_specialists_come_from_the_catalogs_highest_score() -> None:
    specialists = specialists_from_catalog(demo_catalog())
    assert specialists["coding"] == "codegen"
    assert set(specialists) == {"coding", "creative", "qa", "reasoning"}


def test_busy_specialist_suggests_an_instance_citing_the_share(make_record) -> None:
    records = coding_traffic(make_record, to_gpt2=39, to_codegen=11, busy={"codegen": 3, "gpt2": 0})
    [found] = suggest(records, SPECIALISTS)
    assert found["rule"] == "specialist_busy" and found["severity"] == "warning"
    assert "coding prompts went to gpt2 in 78% of cases (39 of 50)" in found["message"]
    assert "codegen was busy in 39 of those 39" in found["message"] and "add a codegen instance" in found["message"]
    assert found["evidence"]["specialist_mean_busy"] == 3.0


@pytest.mark.parametrize(("busy", "rule", "phrase"), [
    ({"gpt2": 0}, "specialist_not_ready", "codegen was not ready in 30 of those 30"),
    ({"gpt2": 0, "codegen": 0}, "specialist_outscored", "although it was idle"),
    (None, "specialist_outscored", "or its load unknown in 30"),
])
def test_bypassed_specialist_names_the_cause(make_record, busy, rule, phrase) -> None:
    found = suggest(coding_traffic(make_record, to_gpt2=30, to_codegen=10, busy=busy), SPECIALISTS)
    assert rules(found) == [rule] and phrase in found[0]["message"]


@pytest.mark.parametrize(("to_gpt2", "to_codegen"), [(10, 30), (15, 4)])  # mostly right / too little traffic
def test_specialist_rule_stays_quiet_when_routing_is_fine_or_traffic_small(make_record, to_gpt2, to_codegen) -> None:
    assert suggest(coding_traffic(make_record, to_gpt2, to_codegen, busy={"codegen": 2}), SPECIALISTS) == []


def test_manual_and_honoured_hybrid_requests_are_not_routing_decisions(make_record) -> None:
    records = [make_record(task="coding", selected_model="gpt2", selection_mode=mode, candidates_busy={"codegen": 5})
               for mode in ("manual", "hybrid") for _ in range(30)]
    assert "specialist_busy" not in rules(suggest(records, SPECIALISTS))


def test_hybrid_fallback_rate_is_reported_per_preferred_model(make_record) -> None:
    records = [make_record(selection_mode="hybrid", preferred_model="codegen", selected_model="codegen")
               for _ in range(26)]
    records += [make_record(selection_mode="hybrid", preferred_model="codegen", selected_model="gpt2",
                            fallback_used=True, fallback_reason=reason, task="coding")
                for reason in ["preferred_unavailable"] * 10 + ["model_failed"] * 4]
    records += [make_record(selection_mode="hybrid", preferred_model="gpt2") for _ in range(30)]
    found = [s for s in suggest(records, {}) if s["rule"] == "hybrid_fallback_high"]
    assert len(found) == 1
    assert found[0]["message"].startswith("hybrid requests preferring codegen fell back in 35% of cases "
                                          "(14 of 40; preferred_unavailable 10, model_failed 4)")


def test_a_ready_model_never_chosen_is_named(make_record) -> None:
    records = [make_record(candidates_busy={"gpt2": 0, "distilgpt2": 0, "codegen": 1}, selected_model=m)
               for m in ["gpt2"] * 15 + ["codegen"] * 10]
    found = [s for s in suggest(records, {}) if s["rule"] == "model_never_chosen"]
    assert [s["evidence"]["model"] for s in found] == ["distilgpt2"]
    assert "ready for 25 auto-selected requests and chosen for none" in found[0]["message"]


@pytest.mark.parametrize(("failures", "kind", "fires"), [
    (6, "generation_failed", True), (1, "generation_failed", False), (6, "invalid_request", True)])
def test_error_rate_rule_cites_rate_and_kinds(make_record, failures, kind, fires) -> None:
    records = [make_record(selected_model="codegen") for _ in range(50 - failures)]
    records += [make_record(selected_model="codegen", error_kind=kind) for _ in range(failures)]
    found = [s for s in suggest(records, {}) if s["rule"] == "error_rate_high"]
    assert bool(found) == fires
    if fires:
        assert f"codegen: 12% of requests failed (6 of 50; {kind} 6)" in found[0]["message"]


def test_tail_latency_compares_p99_with_p50(make_record) -> None:
    records = [make_record(selected_model="gpt2", ttft_s=0.05) for _ in range(95)]
    records += [make_record(selected_model="gpt2", ttft_s=2.0) for _ in range(5)]
    found = [s for s in suggest(records, {}) if s["rule"] == "tail_latency"]
    assert [s["evidence"]["metric"] for s in found] == ["ttft_s"]
    assert found[0]["evidence"]["p50"] == pytest.approx(0.05) and found[0]["evidence"]["p99"] == pytest.approx(2.0)
    assert "p99 ttft_s 2.000 s is 40.0x its p50 0.050 s over 100 requests" in found[0]["message"]


def test_slow_selection_is_measured_against_the_target(make_record) -> None:
    records = [make_record(selection_ms=0.3) for _ in range(90)] + [make_record(selection_ms=5.0) for _ in range(10)]
    found = [s for s in suggest(records, {}) if s["rule"] == "selection_slow"]
    assert found and "exceeds the 2 ms target" in found[0]["message"]
    assert suggest(records, {}, Thresholds(selection_p99_ms=10.0)) == []


def test_warnings_come_before_information(make_record) -> None:
    records = coding_traffic(make_record, to_gpt2=30, to_codegen=0, busy={"gpt2": 0, "codegen": 0})  # info
    records += [make_record(selected_model="distilgpt2", error_kind="unavailable") for _ in range(20)]  # warning
    severities = [s["severity"] for s in suggest(records, SPECIALISTS)]
    assert severities == sorted(severities, key=lambda s: s != "warning") and set(severities) == {"warning", "info"}
