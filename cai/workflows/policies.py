"""`cai eval policies` as jobs: each policy answers, the judge compares, the statistics score.

Each policy answers every prompt with the generate stage in its own run folder, DIR/policies/NAME
(cached, resumable, seeded like any `cai generate`); their answers are joined by prompt id into
DIR/answers.jsonl (`PolicyAnswers` rows); the compare stage (`cai.stages.compare`) judges every
pair of policies on every prompt into DIR/comparisons.jsonl; `cai.metrics.elo` turns those into
DIR/eval.json and the plots. DIR's manifest records which model each policy name stands for.
"""

from __future__ import annotations

import typing
from collections import Counter
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from cai.constitution.schema import LoadedConstitution
from cai.core.errors import CaiError
from cai.core.records import ComparisonRecord, PolicyAnswers, ResponseRecord
from cai.core.run import RunDir, now, read_jsonl, write_jsonl
from cai.core.sources import RecordSource
from cai.core.stage import JobReport, Stage, config_settings
from cai.engine.config import EngineConfig
from cai.engine.engine import SamplingConfig
from cai.io.inputs import sha256_of
from cai.engine.models import resolve_model
from cai.metrics.elo import policy_stats, self_preference, write_results
from cai.stages.compare import CompareConfig, compare_batch
from cai.stages.dialogue import Style
from cai.stages.generate import GenerateConfig
from cai.stages.quality import QualityConfig
from cai.workflows.jobs import constitution_settings, generate_stage

_SAMPLING_KEYS = typing.get_type_hints(SamplingConfig)  # name -> int or float


@dataclass(frozen=True)
class Policy:
    name: str
    model: str
    sampling: SamplingConfig

    def record(self) -> dict:
        return {"model": self.model, "sampling": self.sampling.to_dict(), "run": f"policies/{self.name}"}


def parse_policies(specs: list[str], sampling: SamplingConfig) -> list[Policy]:
    """`NAME=MODEL[,KEY=VALUE…]`: a policy's name, its model, and sampling settings of its own
    (temperature, top_p, max_tokens, seed) over the command's, e.g. `hot=M,temperature=1.2`."""
    policies = []
    for spec in specs:
        name, sep, rest = spec.partition("=")
        model, *overrides = rest.split(",")
        if not sep or not name.strip() or not model.strip() or "/" in name:
            raise CaiError(f"--policy takes NAME=MODEL[,KEY=VALUE…] (a name without '/'), not '{spec}'")
        settings = {}
        for pair in overrides:
            key, sep, value = pair.partition("=")
            if not sep or key.strip() not in _SAMPLING_KEYS:
                raise CaiError(f"--policy {spec}: '{pair}' is not KEY=VALUE with KEY one of {', '.join(_SAMPLING_KEYS)}")
            key = key.strip()
            try:
                settings[key] = _SAMPLING_KEYS[key](value)
            except ValueError:
                raise CaiError(f"--policy {spec}: {key} must be a number, not '{value}'") from None
        policies.append(Policy(name.strip(), model.strip(), replace(sampling, **settings)))
    names = [p.name for p in policies]
    if len(policies) < 2:
        raise CaiError("give two or more --policy NAME=MODEL to compare")
    if len(set(names)) < len(names):
        raise CaiError(f"policy names must differ: {', '.join(names)}")
    return policies


def policy_run(out: RunDir, policy: Policy) -> RunDir:
    return RunDir(out.path / "policies" / policy.name)


def answer_stage(policy: Policy, prompts: Path, engine: EngineConfig, style: Style, quality: QualityConfig,
                 prompt_field: str = "prompt", limit: int | None = None) -> Stage:
    """The policy's `cai generate` on the prompts (its engine: the command's, with its model)."""
    config = GenerateConfig(policy.model, style, policy.sampling, quality=quality)
    return generate_stage(prompts, config, replace(engine, model=policy.model), prompt_field, limit)


def join_answers(out: RunDir, policies: list[Policy]) -> tuple[Path, list[str]]:
    """DIR/answers.jsonl: one row per prompt any policy answered, with each policy's answer, in the
    prompts' order; and notes on prompts some policy did not answer (their rows are its errors)."""
    rows: dict[str, PolicyAnswers] = {}
    for policy in policies:
        responses = policy_run(out, policy).require("responses.jsonl", f"cai generate --model {policy.model}")
        for r in read_jsonl(responses, ResponseRecord):
            rows.setdefault(r.id, PolicyAnswers(id=r.id, prompt=r.prompt, answers={})).answers[policy.name] = r.response
    path = out.file("answers.jsonl")
    write_jsonl(path, list(rows.values()))
    missing = Counter(p.name for r in rows.values() for p in policies if p.name not in r.answers)
    return path, [f"{count} prompts lack an answer of {name} (see {policy_run(out, p).file('errors.jsonl')})"
                  for p in policies if (count := missing[name := p.name])]


def check_tags(constitution: LoadedConstitution, config: CompareConfig) -> None:
    """Refused before any policy answers: an unknown tag, or more principles per comparison than a tag has."""
    by_tag = constitution.constitution.principles_by_tag(config.tags)  # an unknown tag is refused here
    fewest = min(len(principles) for principles in by_tag.values())
    if not 1 <= config.principles_per_comparison <= fewest:
        raise CaiError(f"--principles-per-comparison must be between 1 and {fewest} "
                       "(the fewest preference principles of a tag asked for)")


def _compare_notes(counters: Counter) -> list[str]:
    return [f"{counters['comparisons']} comparisons (prompt × pair of policies × tag), {counters['ties']} of them "
            f"ties of identical answers (0.5, not asked); {counters['judgements']} judgements asked"]


def compare_stage(out: RunDir, answers: Path, policies: list[Policy], constitution: LoadedConstitution,
                  config: CompareConfig, engine: EngineConfig) -> Stage:
    check_tags(constitution, config)
    settings = {**config_settings(config, "judge_model"), "constitution": constitution_settings(constitution),
                "policies": {p.name: p.model for p in policies}}
    return Stage("compare", "comparisons.jsonl", RecordSource(answers, "compare", record_type=PolicyAnswers),
                 partial(compare_batch, constitution=constitution, config=config), settings, engine, _compare_notes)


def finish(out: RunDir, report: JobReport, policies: list[Policy], config: CompareConfig, prompts: Path,
           limit: int | None) -> dict:
    """DIR/eval.json and the plots from DIR/comparisons.jsonl; the run recorded in DIR's manifest."""
    rows = read_jsonl(report.output, ComparisonRecord)
    stats = policy_stats(rows, [p.name for p in policies], config.tags, config.seed)
    own = [p.name for p in policies if resolve_model(p.model) == resolve_model(config.model)]
    if own:  # the judge also answered: does it favour its own answers?
        stats["self_preference"] = self_preference(rows, own)
    written = write_results(stats, out.path)
    out.record_stage("eval_policies", {
        "policies": {p.name: p.record() for p in policies}, "prompts": str(prompts), "prompts_sha256": sha256_of(prompts),
        "limit": limit, "judge_model": config.model, "tags": config.tags, "seed": config.seed,
        "principles_per_comparison": config.principles_per_comparison,
        "outputs": [str(p) for p in written], "finished": now()})
    return stats
