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
    assert "== fresh v1: development set" in out and "== fresh v2: development set" in out


def test_without_the_final_test_only_the_development_sets_are_shown(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(bench_classifier, "FINAL_TEST_FILE", tmp_path / "absent.jsonl")

    assert bench_classifier.main(["--no-server", "--rounds", "1", "--final-test", str(tmp_path / "absent.jsonl")]) == 0
    out = capsys.readouterr().out

    assert f"final test absent ({tmp_path / 'absent.jsonl'})" in out and "== final test" not in out


def test_a_final_test_path_that_does_not_exist_is_refused_naming_the_option(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_classifier.main(["--no-server", "--final-test", str(tmp_path / "nope.jsonl")])

    assert exit_info.value.code == 2 and "--final-test: no such file" in capsys.readouterr().err
