"""The stage registry: every job of `cai` as a stage of a pipeline file, in the one order they run.

A `StageSpec` names the `cai` command a stage runs, the file (or folder) it writes in the run
folder, what kind of job it is, and the defaults it takes from earlier stages. `cai run` (the
pipeline file, its plan, its manifest records) reads this list; a test checks that every job
command of the CLI is a stage here and that every stage names a command, so the two cannot drift.

Defaults that depend on an earlier stage follow one rule, the same as the commands': a stage that
reads an earlier stage's rows uses, unless told otherwise, the model that wrote them (critique:
the responses' model; label and rules: the samples' model); each alternative is tried in turn and
the first that resolves is used ("{sample.model}": the model the file's `sample` stage used).

A stage from outside cai registers itself with `register` from a plugin module (`cai.runner.plugins`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cai.core.records import PreferenceRecord, ResponseRecord, RevisionRecord, SampleRecord


@dataclass(frozen=True)
class StageSpec:
    name: str
    command: tuple[str, ...]  # the `cai` subcommand it runs
    output: str  # what "{name}" stands for, in the run folder
    kind: str  # chunks (resumable, refuses other settings without --force), export, train, stdout
    defaults: dict[str, tuple[str, ...]] = field(default_factory=dict)  # key -> alternatives: the first that resolves
    reads: tuple[str, ...] = ()  # earlier stages whose files it reads without naming them
    done_file: str | None = None  # what exists once it finished (default: output; a model's cai_train.json)
    rows: type | None = None  # the row model of a JSONL output whose rows carry quality flags (the report counts them)

    @property
    def done(self) -> str:
        return self.done_file or (f"{self.output}/cai_train.json" if self.kind == "train" else self.output)


RUN = ("{run}",)
OUT = ("{out}",)
CONSTITUTION = ("{constitution}",)
MODEL = ("{model}",)
# The policy: the last RL-CAI one (in an iterated file, the previous iteration's), else the SL-CAI
# model where the file trains one, else the base model.
POLICY = ("{train_ppo}", "{train_dpo}", "{train_sft}", "{model}")
STAGES: list[StageSpec] = [
    StageSpec("redteam_expand", ("redteam", "expand"), "prompts.jsonl", "chunks", {"run": RUN, "model": MODEL}),
    StageSpec("generate", ("generate",), "responses.jsonl", "chunks", {"run": RUN, "model": MODEL}, rows=ResponseRecord),
    StageSpec("critique", ("critique",), "revisions.jsonl", "chunks",
              {"run": RUN, "model": ("{generate.model}", "{model}"), "constitution": CONSTITUTION}, reads=("generate",),
              rows=RevisionRecord),
    StageSpec("export_sft", ("export", "sft"), "sft.jsonl", "export", {"run": RUN}, reads=("critique",)),
    StageSpec("train_sft", ("train", "sft"), "models/train_sft", "train", {"data": ("{export_sft}",), "model": MODEL, "out": OUT}),
    StageSpec("sample", ("sample",), "samples.jsonl", "chunks", {"run": RUN, "prompts": ("{generate.prompts}",), "model": POLICY},
              rows=SampleRecord),
    StageSpec("rules", ("rules",), "rule_scores.jsonl", "chunks",
              {"run": RUN, "judge_model": ("{sample.model}", "{critique.model}", "{generate.model}", "{model}"),
               "constitution": CONSTITUTION}, reads=("generate", "critique", "sample")),
    StageSpec("label", ("label",), "preferences.jsonl", "chunks",
              {"run": RUN, "judge_model": ("{sample.model}", "{model}"), "constitution": CONSTITUTION}, reads=("sample",),
              rows=PreferenceRecord),
    StageSpec("export_prefs", ("export", "prefs"), "prefs.jsonl", "export", {"run": RUN}, reads=("label",)),
    StageSpec("export_rules", ("export", "rules"), "rules.jsonl", "export", {"run": RUN, "constitution": CONSTITUTION},
              reads=("rules",)),
    StageSpec("train_pm", ("train", "pm"), "models/train_pm", "train", {"data": ("{export_prefs}",), "model": MODEL, "out": OUT}),
    StageSpec("train_rules", ("train", "rules"), "models/train_rules", "train",
              {"data": ("{export_rules}",), "model": MODEL, "out": OUT}),
    StageSpec("train_ppo", ("train", "ppo"), "models/train_ppo", "train",
              {"prompts": ("{sample.prompts}", "{generate.prompts}"), "policy": POLICY, "reward_model": ("{train_pm}",),
               "out": OUT}),
    StageSpec("train_dpo", ("train", "dpo"), "models/train_dpo", "train", {"data": ("{export_prefs}",), "model": POLICY, "out": OUT}),
    StageSpec("eval_judge", ("eval", "judge"), "eval_judge", "chunks",
              {"out": OUT, "judge_model": ("{label.judge_model}", "{model}"), "constitution": CONSTITUTION},
              done_file="eval_judge/summary.json"),
    StageSpec("eval_pm", ("eval", "pm"), "eval_pm.json", "stdout", {"model": ("{train_pm}",)}),
    StageSpec("eval_rules", ("eval", "rules"), "eval_rules.json", "stdout", {"model": ("{train_rules}",)}),
    StageSpec("eval_policies", ("eval", "policies"), "eval_policies", "chunks",
              {"out": OUT, "judge_model": MODEL, "constitution": CONSTITUTION}, done_file="eval_policies/eval.json"),
    # the run's data as a Hugging Face dataset folder, with this pipeline file copied in
    StageSpec("publish", ("publish",), "publish", "export",
              {"run": RUN, "out": OUT, "pipeline": ("{pipeline}",), "constitution": CONSTITUTION},
              reads=("redteam_expand", "critique", "export_sft", "rules", "label", "export_prefs", "export_rules",
                     "eval_judge", "eval_policies"), done_file="publish/README.md"),
]
SPECS = {s.name: s for s in STAGES}
# With `iterations: N`, these stages run N times, iteration k into RUN/iter-k/ (iterated online
# RL-CAI: iteration k samples from iteration k-1's policy, and its preference set holds the pairs
# of iterations 1..k).
ITERATED = ("sample", "rules", "label", "export_prefs", "export_rules", "train_pm", "train_rules", "train_ppo",
            "train_dpo", "eval_policies")


def register(spec: StageSpec, after: str | None = None) -> None:
    """Add a stage from outside cai (see `cai.runner.plugins`): it runs after the stage `after` (default:
    last), and becomes a pipeline stage like the others; its command must be on cai's app."""
    if spec.name in SPECS:
        raise ValueError(f"a stage named '{spec.name}' is registered already")
    STAGES.insert(STAGES.index(SPECS[after]) + 1 if after else len(STAGES), spec)
    SPECS.clear()
    SPECS.update((s.name, s) for s in STAGES)
