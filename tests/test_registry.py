"""The stage registry is the one list of jobs: every job command of the CLI is a pipeline stage, a
pipeline file that names every stage is planned whole, and references work inside values."""

import json
from pathlib import Path

import pytest
import typer
from cli_run import ENV, cai, invoke

from cai.cli import app
from cai.runner.pipeline_file import read_pipeline
from cai.runner.registry import SPECS, STAGES
from cai.runner.runner import plan

COMMANDS = typer.main.get_command(app)
ROOT = Path(__file__).resolve().parent.parent
HH = ROOT / "tests" / "data" / "hh-rlhf-harmless-test-first300.jsonl.gz"
# Commands that are tools around the jobs, not jobs that write into a run folder.
TOOLS = {("constitution", "check"), ("constitution", "import"), ("model", "prepare"), ("init",), ("run",), ("demo",),
         ("report",), ("review", "export"), ("review", "push"), ("review", "pull"),  # review: people label, between
         ("fit", "rules"),  # fitted to a gold set people made
         ("serve", "reward")}  # a server, not a job


def _commands(group, prefix=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name)


def test_every_job_command_is_a_stage_and_every_stage_a_command():
    commands = {c for c in _commands(COMMANDS) if c[0] != "bench"}
    stages = {s.command for s in STAGES}
    assert stages <= commands
    assert commands - stages - TOOLS == set()


EVERY_STAGE = f"""\
run: r
model: base
redteam_expand:
  seeds: prompts.jsonl
  n: 4
generate:
  prompts: "{{redteam_expand}}"
critique:
export_sft:
train_sft:
sample:
  prompts: "{{redteam_expand}}"
rules:
label:
  judge_model: "{{model}}"
export_prefs:
export_rules:
  heldout: 0.25
train_pm:
train_rules:
train_ppo:
  algo: grpo
  rule_model: "{{train_rules}}"
train_dpo:
eval_judge:
  pairs: {HH}
eval_pm:
  pairs: {HH}
eval_rules:
  data: "{{run}}/rules_heldout.jsonl"
eval_policies:
  prompts: prompts.jsonl
  policy: ["base={{model}}", "sl={{train_sft}}", "rl={{train_ppo}}"]
publish:
  license: apache-2.0
"""


def test_a_file_that_names_every_stage_is_planned_whole_with_references_inside_values(tmp_path):
    (tmp_path / "prompts.jsonl").write_text('{"prompt": "hi"}\n')
    (tmp_path / "pipeline.yaml").write_text(EVERY_STAGE)
    pipeline = read_pipeline(tmp_path / "pipeline.yaml", COMMANDS)
    assert [s.name for s in pipeline.stages] == list(SPECS)
    argv = {s.name: " ".join(s.argv) for s in pipeline.stages}
    deps = {s.name: s.deps for s in pipeline.stages}
    assert "--prompts r/prompts.jsonl" in argv["sample"] and deps["sample"] == ["redteam_expand", "train_sft"]
    assert "--policy base=base --policy sl=r/models/train_sft --policy rl=r/models/train_ppo" in argv["eval_policies"]
    assert deps["eval_policies"] == ["train_sft", "train_ppo"]
    assert "--prompts r/prompts.jsonl" in argv["train_ppo"] and "redteam_expand" in deps["train_ppo"]  # via sample's
    assert "--judge-model r/models/train_sft" in argv["rules"]  # the samples' model, as `cai rules` picks
    assert "--rule-model r/models/train_rules" in argv["train_ppo"] and "train_rules" in deps["train_ppo"]
    assert argv["eval_rules"] == "--model r/models/train_rules --data r/rules_heldout.jsonl"
    assert argv["publish"].startswith("r --out r/publish --pipeline pipeline.yaml --constitution ")
    assert "eval_policies" in deps["publish"] and "export_prefs" in deps["publish"]
    assert {s.state for s in plan(pipeline)} == {"to do"}

    shown = invoke(["run", str(tmp_path / "pipeline.yaml"), "--dry-run"])
    assert shown.exit_code == 0, shown.output
    assert all(name in shown.output for name in SPECS)


def test_a_bad_choice_in_the_pipeline_file_is_refused_by_the_dry_run(tmp_path):
    (tmp_path / "prompts.jsonl").write_text('{"prompt": "hi"}\n')
    (tmp_path / "pipeline.yaml").write_text("run: r\ngenerate:\n  prompts: prompts.jsonl\nexecutor:\n  executor: rayy\n")
    shown = invoke(["run", str(tmp_path / "pipeline.yaml"), "--dry-run"])
    assert shown.exit_code == 1
    assert "pipeline.yaml:5: executor.executor:" in shown.output and "rayy" in shown.output


def test_a_missing_tokenizer_folder_is_refused_by_the_dry_run(tmp_path):
    (tmp_path / "prompts.jsonl").write_text('{"prompt": "hi"}\n')
    (tmp_path / "pipeline.yaml").write_text("run: r\ngenerate:\n  prompts: prompts.jsonl\n"
                                            "engine:\n  server: [http://127.0.0.1:9/v1]\n  tokenizer: ./no/such/tokenizer\n")
    shown = invoke(["run", tmp_path / "pipeline.yaml", "--dry-run"])
    assert shown.exit_code == 1
    assert "pipeline.yaml:6: engine.tokenizer: no/such/tokenizer: no such file or folder" in shown.output


PLUGIN = """
\"\"\"A stage defined outside cai: the words of each response, as a plugin registers it.\"\"\"
import json
from pathlib import Path

import typer

from cai.cli.common import app
from cai.runner.registry import StageSpec, register
from cai.core.run import RunDir, now, write_jsonl


@app.command("lengths")
def lengths(run: Path = typer.Option(..., "--run"), unit: str = typer.Option("words")):
    \"\"\"Count the words of each response into RUN/lengths.jsonl.\"\"\"
    folder = RunDir(run)
    rows = [json.loads(line) for line in folder.require("responses.jsonl", "cai generate").read_text().splitlines()]
    with folder.locked():
        write_jsonl(folder.file("lengths.jsonl"), [{"id": r["id"], unit: len(r["response"].split())} for r in rows])
        folder.record_stage("lengths", {"rows_in": len(rows), "rows_out": len(rows), "finished": now()})


register(StageSpec("lengths", ("lengths",), "lengths.jsonl", "export", {"run": ("{run}",)}, reads=("generate",)),
         after="generate")
"""


@pytest.mark.slow
def test_a_stage_defined_outside_cai_runs_as_a_command_and_as_a_pipeline_stage(tmp_path):
    (tmp_path / "cai_lengths.py").write_text(PLUGIN)
    env = {**ENV, "CAI_PLUGINS": "cai_lengths", "PYTHONPATH": str(tmp_path)}
    for run in ("by-command", "by-pipeline"):
        (tmp_path / run).mkdir()
        (tmp_path / run / "responses.jsonl").write_text('{"id": "a", "response": "one two three"}\n')

    done = cai("lengths", "--run", tmp_path / "by-command", env=env)
    assert done.returncode == 0, done.stderr
    (tmp_path / "pipeline.yaml").write_text("run: by-pipeline\nlengths:\n  unit: tokens\n")
    planned = cai("run", "pipeline.yaml", "--dry-run", cwd=tmp_path, env=env)
    assert planned.returncode == 0 and "by-pipeline/lengths.jsonl" in planned.stdout, planned.stderr
    ran = cai("run", "pipeline.yaml", cwd=tmp_path, env=env)
    assert ran.returncode == 0, ran.stderr

    assert (tmp_path / "by-command" / "lengths.jsonl").read_text() == '{"id":"a","words":3}\n'
    assert (tmp_path / "by-pipeline" / "lengths.jsonl").read_text() == '{"id":"a","tokens":3}\n'
    manifest = json.loads((tmp_path / "by-pipeline" / "manifest.json").read_text())
    assert manifest["pipeline"]["lengths"]["status"] == "done"
    again = cai("run", "pipeline.yaml", "--dry-run", cwd=tmp_path, env=env)
    assert "done" in again.stdout

