"""bench_classifier scores the final test only when its file is there, and refuses a --final-test that is not.

It reads the prompt_classifier that `make setup` builds (export/classifier.py), in process.
"""

from __future__ import annotations

import json

import pytest

from pointsman.loadtests import bench_classifier


def test_the_final_test_is_scored_per_class_when_its_file_is_given(tmp_path, capsys):
    final = tmp_path / "fresh_prompts_v3.jsonl"
    final.write_text("".join(json.dumps({"label": label, "text": text}) + "\n" for label, text in [
        ("coding", "my flask app says 'working outside of application context', why"),
        ("creative", "escreva um poema curto sobre o mar"),
        ("qa", "who painted the girl with a pearl earring"),
        ("reasoning", "if 3 cats catch 3 mice in 3 minutes how many cats catch 100 mice in 100 minutes"),
    ]))

    assert bench_classifier.main(["--no-server", "--rounds", "1", "--final-test", str(final)]) == 0
    out = capsys.readouterr().out

    assert "final test 4" in out and "== final test (fresh_prompts_v3.jsonl) (4)" in out
    section = out.split("== final test (fresh_prompts_v3.jsonl) (4)")[1].split("\n\n")[0]
    assert section.count("accuracy") == 3 and "recall" in section and "lexical fast path" in section
    assert all(f"== fresh {v}: development set" in out for v in ("v1", "v2", "v4"))
    assert "== fresh v4: development set (chose features and settings; never trained on) (194)" in out


def test_without_the_final_test_only_the_development_sets_are_shown(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(bench_classifier, "FINAL_TEST_FILE", tmp_path / "absent.jsonl")

    assert bench_classifier.main(["--no-server", "--rounds", "1", "--final-test", str(tmp_path / "absent.jsonl")]) == 0
    out = capsys.readouterr().out

    assert f"final test absent ({tmp_path / 'absent.jsonl'})" in out and "== final test" not in out


def test_a_final_test_path_that_does_not_exist_is_refused_naming_the_option(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_classifier.main(["--no-server", "--final-test", str(tmp_path / "nope.jsonl")])

    assert exit_info.value.code == 2 and "--final-test: no such file" in capsys.readouterr().err


@pytest.mark.parametrize("right, taken, bound", [
    (149, 149, 0.98),   # 0.05 ** (1 / 149) = 0.9801: the fewest clean prompts that show 98%
    (148, 148, 0.97997),
    (96, 97, 0.9520),
    (0, 5, 0.0),
])
def test_the_precision_lower_bound_is_the_one_sided_clopper_pearson_bound(right, taken, bound):
    assert bench_classifier.precision_lower_bound(right, taken) == pytest.approx(bound, abs=1e-4)


def test_the_fast_path_sweep_picks_the_threshold_with_the_highest_lower_bound():
    from pointsman.export.dataset import LabelledPrompt
    from pointsman.policy.analysis import PromptAnalysis

    class Lexical:  # confidence is read off the prompt, so the sweep's arithmetic is checked exactly
        threshold = 0.9

        def analyze(self, text: str) -> PromptAnalysis:
            task, confidence = text.split()
            rest = (1 - float(confidence)) / 3
            return PromptAnalysis(task, float(confidence), {t: float(confidence) if t == task else rest
                                                           for t in ("coding", "creative", "qa", "reasoning")},
                                  0.1, "lexical")

    # 20 right at 0.95, one miss at 0.88, 10 right at 0.86: 0.85 takes 31 with a miss, 0.9 takes 20 clean
    prompts = ([LabelledPrompt("coding 0.95", "coding", "fresh", 0.0, "fresh")] * 20
               + [LabelledPrompt("qa 0.88", "creative", "fresh", 0.0, "fresh")]
               + [LabelledPrompt("qa 0.86", "qa", "fresh", 0.0, "fresh")] * 10)
    lines = bench_classifier.fast_path_bounds(Lexical(), {"dev": prompts})

    assert "  0.850  dev 30/31  pooled 30/31 = 96.8%" in lines[1]
    assert "  0.900  dev 20/20  pooled 20/20 = 100.0%  lower bound 86.1%" in lines
    assert lines[-1] == "highest lower bound: 86.1% at 0.9 (does not clear 98%); the current threshold is 0.9"


def test_the_serving_comparison_scores_each_token_length_and_times_each_variant_against_the_first():
    from pointsman.export.dataset import load_development_sets
    from pointsman.policy.analysis import LexicalAnalyzer

    if not (bench_classifier.FOLDER / "1" / "model.onnx").exists():
        pytest.skip("prompt_classifier is not built: run `pointsman build-classifier` (make setup does)")
    lines = bench_classifier.serving_variants(LexicalAnalyzer(), load_development_sets(), count=10)

    assert [line.split(":")[0] for line in lines[1:3]] == ["   64 tokens", "   32 tokens"]
    assert all(", fresh v1 " in line and " of 233" in line for line in lines[1:3])
    timings = lines[-3:]
    assert [t.split(":")[0] for t in timings] == ["   64 tokens, 1 thread ", "   32 tokens, 1 thread ",
                                                  "   32 tokens, 2 threads"]
    assert timings[0].endswith("(1.00x, 1.00x, 1.00x)")
