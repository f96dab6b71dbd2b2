"""`cai eval judge`'s analysis and calibration, and `cai label --calibration`, on the tiny model."""

import gzip
import json
import math

import pytest
import stage_runs

from cai.core.records import PreferenceRecord
from cai.core.run import RunDir, read_jsonl
from cai.core.stage import stage_status
from cai.data import DEMO_PROMPTS
from cai.engine.engine import SamplingConfig
from cai.executors.local import LocalExecutor
from cai.metrics.calibration import load_calibration
from cai.stages.generate import GenerateConfig
from cai.stages.judge import p_x_better
from cai.stages.label import LabelConfig
from cai.workflows import jobs


def test_eval_judge_reports_the_analysis_and_fits_a_calibration(tmp_path, engine, default_constitution, tiny):
    pairs = tmp_path / "pairs.jsonl.gz"
    rows = [{"chosen": f"\n\nHuman: question {i}?\n\nAssistant: a kind and careful answer {i}",
             "rejected": f"\n\nHuman: question {i}?\n\nAssistant: no {i}"} for i in range(8)]
    pairs.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    run, config = RunDir(tmp_path / "out"), LabelConfig("tiny", keep_flagged=True)
    report = jobs.execute(run, jobs.eval_judge_stage(pairs, default_constitution, config, tiny), LocalExecutor())
    fitted = jobs.eval_judge_calibration(report, config, "platt", 2, tmp_path / "cal.yaml")
    summary = jobs.eval_judge_summary(run, report, config, fitted)

    assert summary["n"] == 8 and len(summary["accuracy_ci95"]) == 2
    assert summary["accuracy_ci95"][0] <= summary["accuracy"] <= summary["accuracy_ci95"][1]
    assert -1 <= summary["kappa"] <= 1
    assert sum(p["n"] for p in summary["per_principle"].values()) == 8  # one principle per pair
    assert summary["length_bias"]["humans_prefer_longer"] == 1.0  # every chosen answer is the longer
    assert summary["cost"]["per_1000_pairs"]["judgements"] == 2000  # both orders
    assert summary["cost"]["prompt_tokens"] > 0
    first = json.loads((tmp_path / "out" / "judgements.jsonl").read_text().splitlines()[0])
    assert first["chars"][0] > first["chars"][1]  # the chosen answer's characters, then the rejected's

    calibration, sha, content = load_calibration(tmp_path / "cal.yaml")
    assert content["method"] == "platt" and content["folds"] == 2 and content["judge_model"] == "tiny"
    assert {"ece_before", "ece_after"} <= set(content) and set(calibration.parameters) == {"a", "b"}
    assert summary["calibration"]["file"] == str(tmp_path / "cal.yaml")
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == summary


def test_label_with_a_calibration_keeps_the_raw_label_and_names_the_file(tmp_path, engine, default_constitution, tiny):
    run = RunDir(tmp_path / "run")
    sampling = SamplingConfig(temperature=1.0, max_tokens=10)
    stage_runs.generate(run, DEMO_PROMPTS, tiny, GenerateConfig("tiny", sampling=sampling, n=2), limit=3, stage="sample")
    path = tmp_path / "cal.json"
    path.write_text(json.dumps({"method": "temperature", "parameters": {"temperature": 0.5}}))
    calibration, sha, _ = load_calibration(path)
    config = LabelConfig("tiny", keep_flagged=True, calibration=calibration, calibration_sha256=sha)
    stage_runs.label(run, tiny, default_constitution, config)

    records = read_jsonl(run.file("preferences.jsonl"), PreferenceRecord)
    assert records
    for r in records:
        p_x, p_x_raw = p_x_better(r.judgements, None, calibration), p_x_better(r.judgements)
        x_chosen = r.pair[0] < r.pair[1]
        assert r.p_chosen == pytest.approx(p_x if x_chosen else 1 - p_x) and r.p_chosen >= 0.5
        assert r.p_chosen_raw == pytest.approx(p_x_raw if x_chosen else 1 - p_x_raw)
        assert r.margin == pytest.approx(math.log(r.p_chosen / (1 - r.p_chosen)), abs=1e-6)
        assert r.margin_raw == pytest.approx(math.log(r.p_chosen_raw / (1 - r.p_chosen_raw)), abs=1e-6)
        assert abs(r.margin) >= abs(r.margin_raw) - 1e-9  # temperature 0.5 sharpens
        assert r.provenance.calibration_sha256 == sha
    assert run.manifest()["stages"]["label"]["calibration_sha256"] == sha

    # another calibration file, or none, is other settings: the stage is 'changed'
    path.write_text(json.dumps({"method": "temperature", "parameters": {"temperature": 2.0}}))
    other, other_sha, _ = load_calibration(path)
    changed = LabelConfig("tiny", keep_flagged=True, calibration=other, calibration_sha256=other_sha)
    assert stage_status(run, jobs.label_stage(run, default_constitution, changed, tiny), jobs.CHUNK_SIZE) == "changed"
    plain = LabelConfig("tiny", keep_flagged=True)
    assert stage_status(run, jobs.label_stage(run, default_constitution, plain, tiny), jobs.CHUNK_SIZE) == "changed"
    same = LabelConfig("tiny", keep_flagged=True, calibration=calibration, calibration_sha256=sha)
    assert stage_status(run, jobs.label_stage(run, default_constitution, same, tiny), jobs.CHUNK_SIZE) == "done"


def test_a_label_without_calibration_has_no_raw_fields(tmp_path, engine, default_constitution, tiny):
    run = RunDir(tmp_path / "run")
    sampling = SamplingConfig(temperature=1.0, max_tokens=10)
    stage_runs.generate(run, DEMO_PROMPTS, tiny, GenerateConfig("tiny", sampling=sampling, n=2), limit=2, stage="sample")
    stage_runs.label(run, tiny, default_constitution, LabelConfig("tiny", keep_flagged=True))
    records = read_jsonl(run.file("preferences.jsonl"), PreferenceRecord)
    assert all(r.p_chosen_raw is None and r.margin_raw is None and r.provenance.calibration_sha256 is None for r in records)
    assert "calibration_sha256" not in run.manifest()["stages"]["label"]
