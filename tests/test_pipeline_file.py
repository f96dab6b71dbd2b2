"""`cai run PIPELINE.yaml` and `cai init DIR`: the file is checked like the constitution before
anything runs; a starter project overwrites nothing; a whole tiny-model run reaches a trained RL-CAI
policy, survives SIGKILL in the middle without redoing finished stages, and then plans nothing;
a changed setting is refused, and `--force STAGE` redoes that stage and marks what reads it."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from cli_run import ENV
from cli_run import cai as run_cai

from cai.cli import app
from cai.data import DEMO_PROMPTS
from cai.io.yaml_errors import InvalidFile
from cai.runner.pipeline_file import read_pipeline

ROOT = Path(__file__).resolve().parent.parent
HH = ROOT / "tests" / "data" / "hh-rlhf-harmless-test-first300.jsonl.gz"
COMMANDS = typer.main.get_command(app)


def cai(*args, cwd=None, timeout=600):
    return run_cai(*args, cwd=cwd, timeout=timeout, quiet=False)


def problems_of(path: Path) -> list[str]:
    with pytest.raises(InvalidFile) as caught:
        read_pipeline(path, COMMANDS)
    return [str(p) for p in caught.value.problems]


BAD = """\
run: run
modle: other-model
generate:
  prompts: missing.jsonl
  max_tokens: many
  limit: 0
critque:
  rounds: 2
critique:
  round: 2
  model: "{label}"
label:
  judge_model: "{lable}"
  cot: maybe
train_sft:
  out: somewhere
train_ppo:
  algo: rlo
engine:
  servr: http://127.0.0.1:8000/v1
"""


def test_every_problem_is_named_with_its_line_and_a_hint(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text(BAD)
    found = problems_of(path)
    expected = [
        (2, "unknown key 'modle' (did you mean 'model'?)"),
        (4, "generate.prompts: missing.jsonl: no such file"),
        (5, "generate.max_tokens: Input should be a valid integer"),
        (6, "generate.limit: Input should be greater than or equal to 1"),
        (7, "unknown key 'critque' (did you mean 'critique'?)"),
        (10, "unknown critique option 'round' (did you mean 'rounds'?)"),
        (11, "'{label}' names a later stage"),
        (13, "'{lable}' names no stage (did you mean 'label'?)"),
        (14, "label.cot: takes true or false"),
        (15, "train_sft: 'data' is required (`cai train sft --data`), or a stage export_sft before it"),
        (16, "'out' is set by the run folder"),
        (17, "train_ppo.prompts: missing.jsonl: no such file"),  # generate's prompts, its default
        (18, "train_ppo.algo: 'rlo' is not one of 'ppo', 'rloo', 'grpo'"),
        (20, "unknown engine option 'servr' (did you mean 'server'?)"),
    ]
    for line, message in expected:
        assert any(p.startswith(f"{path}:{line}: {message}") for p in found), (line, message, found)
    assert len(found) == len(expected), found


@pytest.mark.slow
def test_a_bad_file_is_refused_before_anything_runs(tmp_path):
    (tmp_path / "pipeline.yaml").write_text("run: run\ngenerate:\n  prompts: missing.jsonl\n"
                                            "critique:\n  rounds: 0\n")
    done = cai("run", "pipeline.yaml", cwd=tmp_path)
    assert done.returncode == 1
    assert "pipeline.yaml:3: generate.prompts: missing.jsonl: no such file" in done.stderr
    assert "pipeline.yaml:5: critique.rounds: Input should be greater than or equal to 1" in done.stderr
    assert "2 problem(s)" in done.stderr and not (tmp_path / "run").exists()


def test_references_and_defaults_resolve_to_earlier_stages(tmp_path):
    (tmp_path / "prompts.jsonl").write_text('{"prompt": "hi"}\n')
    (tmp_path / "pipeline.yaml").write_text(
        "run: r\nmodel: base\ngenerate:\n  prompts: prompts.jsonl\nexport_sft:\ntrain_sft:\n  set: {max_length: 128}\n"
        "sample:\nlabel:\n  judge_model: judge\ntrain_pm:\n  data: '{train_sft}/../x.jsonl'\ntrain_ppo:\n  algo: rloo\n"
        f"eval_judge:\n  pairs: {HH}\neval_pm:\n  pairs: {HH}\n"
        "engine:\n  engine_arg: {enforce_eager: true}\nexecutor:\n  replicas: 2\n")
    pipeline = read_pipeline(tmp_path / "pipeline.yaml", COMMANDS)
    argv = {s.name: " ".join(s.argv) for s in pipeline.stages}
    assert argv["train_sft"] == "--data r/sft.jsonl --model base --out r/models/train_sft --set max_length=128"
    assert argv["sample"].startswith("--run r --prompts prompts.jsonl --model r/models/train_sft")
    assert "--engine-arg enforce_eager=true --replicas 2" in argv["sample"]
    assert "--policy r/models/train_sft --reward-model r/models/train_pm" in argv["train_ppo"]
    assert argv["eval_judge"].startswith("--out r/eval_judge --judge-model judge")  # label's judge
    assert argv["eval_pm"].startswith("--model r/models/train_pm")
    deps = {s.name: s.deps for s in pipeline.stages}
    assert deps["sample"] == ["train_sft"] and deps["train_pm"] == ["train_sft"]
    assert deps["train_ppo"] == ["train_sft", "train_pm"] and deps["eval_pm"] == ["train_pm"]
    assert deps["eval_judge"] == []
    # how a stage runs (executor, servers) is not part of what it writes
    assert "replicas" not in pipeline.stage("sample").settings


@pytest.mark.slow
def test_init_writes_a_project_that_plans_the_whole_path_and_overwrites_nothing(tmp_path):
    project = tmp_path / "my-cai"
    done = cai("init", str(project))
    assert done.returncode == 0, done.stderr
    names = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())
    assert names == ["constitution/default.yaml", "pipeline.yaml", "prompts/critique_revision_examples.yaml",
                     "prompts/preference_examples.yaml", "prompts/red_team_demo.jsonl"]
    plan = cai("run", "pipeline.yaml", "--dry-run", cwd=project)
    assert plan.returncode == 0, plan.stderr
    stages = ["generate", "critique", "export_sft", "train_sft", "sample", "label", "export_prefs", "train_pm",
              "train_ppo"]
    rows = [line for line in plan.stdout.splitlines() if "to do" in line]
    assert [row.split()[1] for row in rows] == stages, plan.stdout

    (project / "pipeline.yaml").write_text("mine\n")
    (project / "prompts" / "red_team_demo.jsonl").unlink()
    again = cai("init", str(project))
    assert again.returncode == 1
    assert again.stderr.strip().count("\n") == 0 and "already exists" in again.stderr, again.stderr
    assert (project / "pipeline.yaml").read_text() == "mine\n"
    assert not (project / "prompts" / "red_team_demo.jsonl").exists()  # nothing written when refused


TINY = """\
run: run
model: {model}
generate:
  prompts: {prompts}
  limit: 4
  max_tokens: 8
critique:
  rounds: 1
  max_tokens: 8
export_sft:
  keep_flagged: true
train_sft:
  max_steps: 2
  batch_size: 2
  set: {{max_length: 128}}
sample:
  limit: 4
  max_tokens: 8
label:
  keep_flagged: true
export_prefs:
  keep_flagged: true
train_pm:
  max_steps: 1
  batch_size: 2
  set: {{max_length: 128}}
train_ppo:
  limit: 4
  set: {{total_episodes: 4, per_device_train_batch_size: 2, num_mini_batches: 1, response_length: 8, num_ppo_epochs: 1}}
"""
STAGES = ["generate", "critique", "export_sft", "train_sft", "sample", "label", "export_prefs", "train_pm", "train_ppo"]


def plan_of(project: Path, *args) -> dict[str, str]:
    done = cai("run", "pipeline.yaml", "--dry-run", *args, cwd=project)
    assert done.returncode == 0, done.stderr
    rows = [line.split("│") for line in done.stdout.splitlines() if line.startswith("│")]
    return {cells[1].strip(): cells[2].strip() + (f" ({cells[3].strip()})" if cells[3].strip() else "") for cells in rows}


def kill_during(project: Path, stage: str, started, timeout: float = 300) -> None:
    """Start `cai run`; SIGKILL it once it is at `stage` and `started()` holds."""
    proc = subprocess.Popen([sys.executable, "-m", "cai", "--quiet", "run", "pipeline.yaml"], cwd=project,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    for line in proc.stderr:
        if f" {stage} (" in line:
            break
    else:
        pytest.fail(f"`cai run` ended before {stage}: exit {proc.wait()}")
    deadline = time.time() + timeout
    while not started() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"`cai run` ended during {stage}: exit {proc.returncode}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()


def stages_alive(project: Path) -> list[str]:
    """The command lines of processes still running in the project (an orphaned stage)."""
    alive = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
            cwd = os.readlink(cmdline.parent / "cwd")
        except OSError:
            continue
        if cwd == str(project) and b"cai" in words:
            alive.append(b" ".join(words).decode())
    return alive


@pytest.mark.slow
def test_a_killed_run_resumes_without_redoing_finished_stages(tmp_path, tiny_model):
    project = tmp_path / "project"
    project.mkdir()
    (project / "pipeline.yaml").write_text(TINY.format(model=tiny_model, prompts=DEMO_PROMPTS))
    run = project / "run"

    model = run / "models" / "train_sft"
    # killed as the trainer has begun its folder, and before it saved a model there
    kill_during(project, "train_sft", started=lambda: model.is_dir())
    assert not (model / "cai_train.json").exists()
    deadline = time.time() + 10
    while stages_alive(project) and time.time() < deadline:
        time.sleep(0.2)
    assert not stages_alive(project), "a stage outlived the killed `cai run`"
    records = json.loads((run / "manifest.json").read_text())["pipeline"]
    assert [records[s]["status"] for s in ("generate", "critique", "export_sft", "train_sft")] == ["done"] * 3 + ["running"]
    finished = {name: (run / name).stat().st_mtime_ns for name in ("responses.jsonl", "revisions.jsonl", "sft.jsonl")}
    ids = {s: records[s]["id"] for s in ("generate", "critique", "export_sft")}
    assert plan_of(project)["train_sft"] == "resume (interrupted)"

    done = cai("--quiet", "run", "pipeline.yaml", cwd=project)
    assert done.returncode == 0, done.stderr[-3000:]
    # the libraries' own chatter (vLLM, torch, transformers) stays hidden without --debug
    for chatter in ("Loading safetensors", "Triton not available", "NUMA binding", "newly initialized",
                    "Loading weights", "Generating train split"):
        assert chatter not in done.stderr, chatter
    assert {name: (run / name).stat().st_mtime_ns for name in finished} == finished
    records = json.loads((run / "manifest.json").read_text())["pipeline"]
    assert {s: records[s]["id"] for s in ids} == ids
    assert all(records[s]["status"] == "done" for s in STAGES)
    policy = run / "models" / "train_ppo"
    assert json.loads((policy / "cai_train.json").read_text())["job"] == "ppo" and (policy / "config.json").is_file()
    assert records["train_ppo"]["after"] == {"train_sft": records["train_sft"]["id"], "train_pm": records["train_pm"]["id"]}
    assert plan_of(project) == {s: "done" for s in STAGES}

    # a changed setting is refused, naming it, before anything runs
    changed = TINY.replace("  rounds: 1", "  rounds: 2").format(model=tiny_model, prompts=DEMO_PROMPTS)
    (project / "pipeline.yaml").write_text(changed)
    refused = cai("run", "pipeline.yaml", cwd=project)
    assert refused.returncode == 1
    assert "critique: its settings changed since it ran (rounds: 1 → 2)" in refused.stderr, refused.stderr
    assert "--force critique" in refused.stderr
    assert (run / "revisions.jsonl").stat().st_mtime_ns == finished["revisions.jsonl"]
    assert plan_of(project)["critique"].startswith("changed (rounds: 1 → 2)")

    # --force redoes a stage; the stages that read its output are then to be redone
    (project / "pipeline.yaml").write_text(TINY.format(model=tiny_model, prompts=DEMO_PROMPTS))
    prefs = (run / "prefs.jsonl").stat().st_mtime_ns
    assert plan_of(project, "--force", "export_prefs")["train_ppo"] == "redo (after train_pm)"
    forced = cai("--quiet", "run", "pipeline.yaml", "--force", "export_prefs", "--until", "export_prefs", cwd=project)
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert (run / "prefs.jsonl").stat().st_mtime_ns != prefs
    plan = plan_of(project)
    assert plan["export_prefs"] == "done" and plan["train_pm"] == "redo (after export_prefs)"
    assert plan["train_ppo"] == "redo (after train_pm)" and plan["train_sft"] == "done"
    assert plan_of(project, "--from", "sample", "--until", "label")["train_pm"] == "left out (--from/--until)"


def test_a_set_field_keeps_its_value_when_its_flag_is_not_given():
    from cai.train.common import TrainingFlags

    overrides = TrainingFlags(sets=["per_device_train_batch_size=2", "max_length=64"]).overrides()
    assert overrides == {"per_device_train_batch_size": 2, "max_length": 64}
    flags = TrainingFlags(batch_size=4, sets=["per_device_train_batch_size=2"])
    assert flags.overrides()["per_device_train_batch_size"] == 4


@pytest.fixture(scope="module")
def tiny_pm(tiny_model, tmp_path_factory) -> Path:
    """An untrained preference model on the tiny model (a one-output classifier head)."""
    from cai.train.preference import _reward_model

    folder = tmp_path_factory.mktemp("pm")
    model, tokenizer = _reward_model(str(tiny_model))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_ppo_with_fewer_prompts_than_a_batch_is_refused_instead_of_waiting_forever(tmp_path, tiny_model, tiny_pm):
    from cai.core.errors import CaiError
    from cai.train.rl import train_rl

    with pytest.raises(CaiError, match="PPO takes batches of 4 prompts .* gives 3"):
        train_rl(DEMO_PROMPTS, str(tiny_model), str(tiny_pm), tmp_path / "ppo", "ppo", limit=3,
                 overrides={"per_device_train_batch_size": 4})


@pytest.mark.slow
def test_a_stage_that_prints_its_result_writes_it_into_the_run_folder(tmp_path, tiny_pm):
    (tmp_path / "pipeline.yaml").write_text(f"run: run\neval_pm:\n  model: {tiny_pm}\n  pairs: {HH}\n  limit: 4\n")
    done = cai("--quiet", "run", "pipeline.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "run" / "eval_pm.json").read_text())
    assert result["n"] == 4 and 0 <= result["accuracy"] <= 1
    assert plan_of(tmp_path) == {"eval_pm": "done"}
