"""Iterated online RL-CAI (`iterations: N` in the pipeline file): each iteration samples from the
previous one's policy into RUN/iter-K/, its preference set holds the pairs of every iteration so
far, a kill in iteration 2 resumes there without redoing iteration 1, and RUN/iterations.json
(each iteration's Elo) is drawn by `cai report`."""

import json

import pytest
import typer
from cli_run import cai
from test_pipeline_file import kill_during, plan_of

from cai.cli import app
from cai.data import DEMO_PROMPTS
from cai.report import write_report
from cai.runner.iterations import write_iterations
from cai.runner.pipeline_file import read_pipeline

ITERATED = """\
run: run
model: {model}
iterations: 2
sample: {{prompts: {prompts}, limit: 4, max_tokens: 8}}
label: {{judge_model: "{{model}}", keep_flagged: true}}
export_prefs: {{keep_flagged: true}}
train_dpo: {{max_steps: 1, batch_size: 2, set: {{max_length: 128}}}}
"""
NAMES = [f"iter-{k}/{s}" for k in (1, 2) for s in ("sample", "label", "export_prefs", "train_dpo")]


def test_each_iteration_samples_from_the_last_policy_and_learns_from_every_earlier_pair(tmp_path):
    (tmp_path / "pipeline.yaml").write_text(ITERATED.format(model="base", prompts=DEMO_PROMPTS))
    pipeline = read_pipeline(tmp_path / "pipeline.yaml", typer.main.get_command(app))
    assert [s.name for s in pipeline.stages] == NAMES
    argv = {s.name: " ".join(s.argv) for s in pipeline.stages}
    assert "--run run/iter-1 " in argv["iter-1/sample"] and "--model base" in argv["iter-1/sample"]
    assert "--model run/iter-1/models/train_dpo" in argv["iter-2/sample"]
    assert argv["iter-2/export_prefs"] == "--run run/iter-2 --keep-flagged --include-prefs run/iter-1/prefs.jsonl"
    assert "--model run/iter-1/models/train_dpo --out run/iter-2/models/train_dpo" in argv["iter-2/train_dpo"]
    deps = {s.name: s.deps for s in pipeline.stages}
    assert deps["iter-2/sample"] == ["iter-1/train_dpo"]
    assert deps["iter-2/export_prefs"] == ["iter-1/export_prefs", "iter-2/label"]


def test_iterations_json_is_drawn_by_the_report(tmp_path):
    run = tmp_path / "run"
    for k, elo in ((1, 10.0), (2, 25.0)):
        folder = run / f"iter-{k}" / "eval_policies"
        folder.mkdir(parents=True)
        tags = {tag: {"elo": {"base": 0.0, "rl": elo}, "ci95": {"base": [0.0, 0.0], "rl": [elo - 5, elo + 5]}}
                for tag in ("harmless", "helpful")}
        (folder / "eval.json").write_text(json.dumps({"tags": tags}))
    written = write_iterations(run, [(k, run / f"iter-{k}" / "eval_policies" / "eval.json") for k in (1, 2, 3)])
    iterations = json.loads(written.read_text())["iterations"]
    assert [(it["iteration"], it["tags"]["harmless"]["elo"]["rl"]) for it in iterations] == [(1, 10.0), (2, 25.0)]
    page = write_report(run).read_text()
    assert 'id="iterations"' in page and "Elo against iteration" in page and "data:image/png;base64," in page


@pytest.mark.slow
def test_a_kill_in_iteration_2_resumes_there_without_redoing_iteration_1(tmp_path, tiny_model):
    project = tmp_path / "project"
    project.mkdir()
    (project / "pipeline.yaml").write_text(ITERATED.format(model=tiny_model, prompts=DEMO_PROMPTS))
    run = project / "run"
    kill_during(project, "iter-2/sample", started=lambda: (run / "iter-2").is_dir())
    records = json.loads((run / "manifest.json").read_text())["pipeline"]
    first = {name: records[name]["id"] for name in NAMES[:4]}
    assert plan_of(project)["iter-2/sample"].startswith("resume")

    done = cai("run", "pipeline.yaml", cwd=project)
    assert done.returncode == 0, done.stderr[-3000:]
    records = json.loads((run / "manifest.json").read_text())["pipeline"]
    assert {name: records[name]["id"] for name in first} == first  # iteration 1 was not redone
    assert plan_of(project) == {name: "done" for name in NAMES}
    own = len((run / "iter-1" / "prefs.jsonl").read_text().splitlines())
    both = len((run / "iter-2" / "prefs.jsonl").read_text().splitlines())
    assert own > 0 and both > own  # iteration 2's set holds iteration 1's pairs too
    assert json.loads((run / "iter-2" / "models" / "train_dpo" / "cai_train.json").read_text())["job"] == "dpo"
