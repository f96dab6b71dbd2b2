"""`cai eval policies` through the CLI: each policy answers in its own run folder (the one on the
judge's engine in this process, the other in a `cai generate` subprocess), the answers are joined
by prompt id, the judge compares them, and eval.json has exactly the documented shape; a rerun
finishes from its chunks without a model. Policy specs and tags are refused before any work."""

import json
import time
from pathlib import Path

import pytest
from cli_run import cai

from cai.core.errors import CaiError
from cai.core.records import ComparisonRecord, PolicyAnswers
from cai.core.run import read_jsonl
from cai.engine.engine import SamplingConfig
from cai.workflows.policies import parse_policies

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ROOT / "tests" / "data" / "hh-rlhf-harmless-test-first300.jsonl.gz"
LIMIT = 4


@pytest.fixture(scope="module")
def other_model(tiny_model, tmp_path_factory):
    """The tiny model under another name: another engine config, so it answers in a subprocess."""
    link = tmp_path_factory.mktemp("other") / "model"
    link.symlink_to(tiny_model, target_is_directory=True)
    return link


def command(out, tiny_model, other_model):
    return ("eval", "policies", "--prompts", PROMPTS, "--limit", LIMIT, "--policy", f"base={tiny_model}",
            "--policy", f"other={other_model},seed=1", "--judge-model", tiny_model, "--max-tokens", 8,
            "--tags", "harmless,helpful", "--out", out, "--chunk-size", 3)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_model, other_model):
    out = tmp_path_factory.mktemp("eval") / "out"
    started = time.perf_counter()
    done = cai(*command(out, tiny_model, other_model))
    return out, done, time.perf_counter() - started


@pytest.mark.slow
def test_each_policy_answers_in_its_own_run_folder(evaluated, tiny_model, other_model):
    out, done, _ = evaluated
    assert done.returncode == 0, done.stderr[-3000:]
    assert "policy other: -m cai" in done.stderr and " generate " in done.stderr  # its own process
    assert "policy base:" not in done.stderr  # on the judge's engine, here
    for name, model, seed in (("base", tiny_model, 0), ("other", other_model, 1)):
        stage = json.loads((out / "policies" / name / "manifest.json").read_text())["stages"]["generate"]
        assert stage["model"] == str(model) and stage["sampling"]["seed"] == seed
        assert stage["rows_out"] == LIMIT and stage["sampling"]["max_tokens"] == 8
    manifest = json.loads((out / "manifest.json").read_text())["stages"]
    assert {n: p["model"] for n, p in manifest["eval_policies"]["policies"].items()} == {
        "base": str(tiny_model), "other": str(other_model)}
    assert manifest["eval_policies"]["judge_model"] == str(tiny_model)

    answers = read_jsonl(out / "answers.jsonl", PolicyAnswers)
    assert len(answers) == LIMIT and all(set(a.answers) == {"base", "other"} for a in answers)
    base = {json.loads(line)["id"]: json.loads(line)["response"]
            for line in (out / "policies" / "base" / "responses.jsonl").read_text().splitlines()}
    assert {a.id: a.answers["base"] for a in answers} == base


@pytest.mark.slow
def test_comparisons_and_eval_json_shape(evaluated):
    out, done, _ = evaluated
    rows = read_jsonl(out / "comparisons.jsonl", ComparisonRecord)
    # every prompt × the one pair × 2 tags × 1 principle × 2 orders
    assert len(rows) == LIMIT * 2 * 2
    assert {(r.policies, r.tag, r.order) for r in rows} == {
        (("base", "other"), t, o) for t in ("harmless", "helpful") for o in ("AB", "BA")}
    assert not all(r.tie for r in rows)  # other seeds, other answers: the judge was asked

    stats = json.loads((out / "eval.json").read_text())
    assert set(stats) == {"tags", "self_preference"} and set(stats["tags"]) == {"harmless", "helpful"}
    # base is the judge's own model: how often it preferred base's answer, over the games not tied
    games = {(r.id, r.tag) for r in rows if not r.tie}
    own = stats["self_preference"]
    assert set(own) == {"base"} and own["base"]["n"] == len(games) and 0 <= own["base"]["share"] <= 1
    assert "the judge is base's model: it preferred base's answer in" in done.stdout
    for tag, s in stats["tags"].items():
        assert set(s) == {"elo", "ci95", "win_rate", "comparisons"}
        assert list(s["elo"]) == list(s["ci95"]) == list(s["win_rate"]) == ["base", "other"]
        assert s["elo"]["base"] == 0.0 and s["ci95"]["base"] == [0.0, 0.0]
        lo, hi = s["ci95"]["other"]
        assert isinstance(lo, float) and lo <= hi
        assert set(s["win_rate"]["base"]) == {"other"} and set(s["win_rate"]["other"]) == {"base"}
        assert s["win_rate"]["base"]["other"] + s["win_rate"]["other"]["base"] == pytest.approx(1)
        assert s["comparisons"] == LIMIT
        assert f"{tag}: {LIMIT} comparisons" in done.stdout  # its table is printed
    assert (out / "elo.png").stat().st_size and (out / "harmless-vs-helpful.png").stat().st_size


@pytest.mark.slow
def test_a_rerun_finishes_from_its_chunks(evaluated, tiny_model, other_model):
    out, _, first = evaluated
    before = (out / "eval.json").read_bytes()
    started = time.perf_counter()
    again = cai(*command(out, tiny_model, other_model))
    seconds = time.perf_counter() - started
    assert again.returncode == 0, again.stderr[-3000:]
    assert (out / "eval.json").read_bytes() == before
    assert "policy other: answered before" in again.stderr and "opening" not in again.stderr
    stages = json.loads((out / "manifest.json").read_text())["stages"]
    assert stages["compare"]["resumed_rows"] == stages["compare"]["rows_in"] == LIMIT
    assert seconds < first / 3


def test_policy_specs():
    base = SamplingConfig(temperature=0.7, seed=3)
    a, b = parse_policies(["a=m1", "hot=/models/m2,temperature=1.2,seed=5"], base)
    assert (a.name, a.model, a.sampling) == ("a", "m1", base)
    assert (b.name, b.model, b.sampling.temperature, b.sampling.seed, b.sampling.top_p) == ("hot", "/models/m2", 1.2, 5, base.top_p)
    for specs, message in ((["a=m"], "two or more"), (["a=m", "a=n"], "must differ"), (["a=m", "b"], "NAME=MODEL"),
                           (["a=m", "b=n,colour=red"], "KEY one of"), (["a=m", "b=n,seed=x"], "seed must be a number")):
        with pytest.raises(CaiError, match=message):
            parse_policies(specs, base)


@pytest.mark.slow
def test_unknown_tags_are_refused_before_any_answer(tmp_path):
    done = cai("eval", "policies", "--prompts", PROMPTS, "--policy", "a=x", "--policy", "b=y", "--tags", "kind",
               "--out", tmp_path / "out")
    assert done.returncode == 1 and "no preference principle is tagged 'kind'" in done.stderr
    assert not (tmp_path / "out").exists()
