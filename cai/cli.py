"""The `cai` command line: constitution tools, jobs, exports and the demo."""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from cai import jobs
from cai.constitution import load_constitution
from cai.data import DEFAULT_CONSTITUTION, DEMO_PROMPTS
from cai.dialogue import Style
from cai.engine import SamplingConfig
from cai.errors import CaiError
from cai.importers import from_anthropic, from_hf, write_constitution
from cai.models import DEFAULT_MODEL, prepare_default_model
from cai.records import ResponseRecord, SampleRecord
from cai.run import RunDir, first_record
from cai.stages.critique import CritiqueConfig
from cai.stages.generate import GenerateConfig
from cai.stages.label import LabelConfig
from cai.yaml_errors import InvalidFile


app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False)
constitution_app = typer.Typer(help="Check and import constitutions.", no_args_is_help=True)
export_app = typer.Typer(help="Write the files trainers read.", no_args_is_help=True)
model_app = typer.Typer(help="Prepare models.", no_args_is_help=True)
eval_app = typer.Typer(help="Measure judges and preference models against labels.", no_args_is_help=True)
bench_app = typer.Typer(help="Measure cai's overhead over raw vLLM.", no_args_is_help=True)
train_app = typer.Typer(help="Train with TRL: SFT, preference model, PPO/RLOO/GRPO, DPO.", no_args_is_help=True)
app.add_typer(constitution_app, name="constitution")
app.add_typer(eval_app, name="eval")
app.add_typer(train_app, name="train")
app.add_typer(bench_app, name="bench")
app.add_typer(export_app, name="export")
app.add_typer(model_app, name="model")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
_debug = False

# Options shared by the jobs that generate text.
Model = Annotated[str, typer.Option(help="Model: the default name, a local folder or a hub id.")]
StyleOpt = Annotated[Style, typer.Option(help="chat: the model's chat template; transcript: Human:/Assistant: text.")]
Temperature = Annotated[float, typer.Option(min=0.0, help="Sampling temperature.")]
TopP = Annotated[float, typer.Option(min=0.0, max=1.0, help="Nucleus sampling.")]
MaxTokens = Annotated[int, typer.Option(min=1, help="Most tokens generated per request.")]
Seed = Annotated[int, typer.Option(help="Seeds principle draws and sampling.")]
RunOpt = Annotated[Path, typer.Option("--run", help="Run folder.")]
MaxModelLen = Annotated[Optional[int], typer.Option(min=16, help="Context length (default: the model's).")]
Limit = Annotated[Optional[int], typer.Option(min=1, help="Use the first N rows.")]
PromptField = Annotated[str, typer.Option(help="The field holding the prompt text.")]
ConstitutionOpt = Annotated[Path, typer.Option(help="Constitution YAML.")]
JudgeModel = Annotated[Optional[str], typer.Option(help="The judge (default: the model that wrote the answers).")]
PrinciplesPerPair = Annotated[int, typer.Option(min=1, help="Principles sampled per pair and averaged (an ensemble).")]
Cot = Annotated[bool, typer.Option("--cot", help="The judge reasons step by step first; labels are clamped.")]
NoSwap = Annotated[bool, typer.Option("--no-swap", help="Ask in one order only (no position debiasing).")]
CotMin = Annotated[float, typer.Option(min=0.0, max=0.5, help="Low clamp for chain-of-thought labels.")]
CotMax = Annotated[float, typer.Option(min=0.5, max=1.0, help="High clamp for chain-of-thought labels.")]
ConfigFile = Annotated[Optional[Path], typer.Option("--config", help="YAML whose keys are the TRL config's fields.")]
Out = Annotated[Path, typer.Option("--out", help="Folder for the trained model and cai_train.json.")]
MaxSteps = Annotated[Optional[int], typer.Option(min=1, help="Stop after N optimizer steps.")]
Epochs = Annotated[Optional[float], typer.Option(min=0.0, help="Passes over the data.")]
LearningRate = Annotated[Optional[float], typer.Option(min=0.0, help="Learning rate.")]
BatchSize = Annotated[Optional[int], typer.Option(min=1, help="Per-device batch size.")]
Lora = Annotated[bool, typer.Option("--lora", help="Train LoRA adapters (peft), merged into the saved model.")]
TrainData = Annotated[Path, typer.Option("--data", help="sft: the SFT set (cai export sft); dpo: the preference set (cai export prefs).")]
Sets = Annotated[Optional[list[str]], typer.Option("--set", help="Any other TRL config field: KEY=VALUE (repeatable).")]
Force = Annotated[bool, typer.Option("--force", help="Redo the stage even if the run folder holds output of other settings.")]
ChunkSize = Annotated[int, typer.Option(min=1, help="Examples per unit of work (and per batched engine call).")]
MaxErrorRate = Annotated[float, typer.Option(min=0.0, max=1.0, help="Exit non-zero when a larger share of rows fails.")]


@app.callback()
def _main(debug: Annotated[bool, typer.Option(help="Show tracebacks and engine logs.")] = False):
    global _debug
    _debug = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False, show_time=False)],
    )
    if not debug:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
        warnings.filterwarnings("ignore")
        for noisy in ("vllm", "transformers", "httpx"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def _report(reports: list[jobs.JobReport], max_error_rate: float = 1.0) -> None:
    table = Table(title="summary")
    for column in ("stage", "rows in", "rows out", "errors", "tokens out", "tokens/s"):
        table.add_column(column)
    for r in reports:
        stats = r.stats
        table.add_row(
            r.stage,
            str(r.rows_in),
            str(r.rows_out),
            str(len(r.skipped)),
            str(stats.completion_tokens) if stats else "-",
            f"{stats.tokens_per_second:.0f}" if stats else "-",
        )
    out.print(table)
    for r in reports:
        out.print(f"{r.stage}: {r.output}")
        for note in r.notes:
            out.print(f"{r.stage}: {note}")
        if r.skipped:
            ids = ", ".join(str(s.id or f"line {s.line}") for s in r.skipped[:10]) + (" …" if len(r.skipped) > 10 else "")
            out.print(f"{r.stage}: {len(r.skipped)} rows failed ({ids}); see errors.jsonl")
    for r in reports:
        if r.error_rate > max_error_rate:
            err.print(f"[red]error:[/red] {r.error_rate:.0%} of {r.stage}'s rows failed, more than --max-error-rate {max_error_rate:.0%}")
            raise typer.Exit(3)


@constitution_app.command("check")
def constitution_check(path: Path):
    """Validate a constitution and print a summary, or every problem with its line."""
    try:
        loaded = load_constitution(path)
    except InvalidFile as e:
        for problem in e.problems:
            err.print(str(problem), markup=False, highlight=False)
        err.print(f"[red]{len(e.problems)} problem(s) in {path}[/red]")
        raise typer.Exit(1)
    c = loaded.constitution
    out.print(f"[green]ok[/green] {path}: {c.name} (version {c.version})")
    out.print(f"  critique_revision: {len(c.critique_revision)} principles: {', '.join(p.id for p in c.critique_revision)}")
    out.print(f"  preference:        {len(c.preference)} principles: {', '.join(p.id for p in c.preference)}")
    out.print(f"  few-shot examples: {len(c.critique_examples)} critique/revision, {len(c.preference_examples)} preference")
    out.print(f"  sha256: {loaded.sha256}")
    if not c.preference:
        out.print("[yellow]note: no preference principles, so the AI judge has nothing to ask[/yellow]")


@constitution_app.command("import")
def constitution_import(
    source: Annotated[Path, typer.Argument(help="anthropic: the paper's prompts/ folder; hf: the recipe's JSON file.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The YAML file to write.")],
    fmt: Annotated[str, typer.Option("--from", help="anthropic or hf")] = "anthropic",
):
    """Convert a published constitution into cai's YAML."""
    converters = {"anthropic": from_anthropic, "hf": from_hf}
    if fmt not in converters:
        raise CaiError(f"--from must be one of {', '.join(converters)}, not '{fmt}'")
    if not source.exists():
        raise CaiError(f"{source}: no such file or folder")
    write_constitution(converters[fmt](source), output)
    constitution_check(output)


@model_app.command("prepare")
def model_prepare():
    """Convert the default model into the cache ($CAI_HOME), if it is not there yet."""
    out.print(str(prepare_default_model()))


@app.command()
def generate(
    prompts: Annotated[Path, typer.Option(help="JSONL(.gz), JSON, CSV or Parquet prompts.")],
    run: RunOpt,
    model: Model = DEFAULT_MODEL,
    limit: Limit = None,
    prompt_field: PromptField = "prompt",
    style: StyleOpt = Style.chat,
    temperature: Temperature = 0.7,
    top_p: TopP = 0.95,
    max_tokens: MaxTokens = 256,
    seed: Seed = 0,
    max_model_len: MaxModelLen = None,
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
    force: Force = False,
    max_error_rate: MaxErrorRate = 0.1,
):
    """Write the model's first answer to each prompt into RUN/responses.jsonl."""
    sampling = SamplingConfig(temperature, top_p, max_tokens, seed)
    engine = jobs.open_engine(model, max_model_len=max_model_len)
    report = jobs.generate(
        RunDir(run), prompts, engine, GenerateConfig(model, style, sampling), prompt_field, limit,
        chunk_size=chunk_size, force=force,
    )
    _report([report], max_error_rate)


@app.command()
def critique(
    run: RunOpt,
    rounds: Annotated[int, typer.Option(min=1, help="Critique/revision rounds.")] = 4,
    constitution: ConstitutionOpt = DEFAULT_CONSTITUTION,
    seed: Seed = 0,
    model: Annotated[Optional[str], typer.Option(help="Default: the model that wrote the responses.")] = None,
    style: Annotated[Optional[Style], typer.Option(help="Default: the style of the responses.")] = None,
    temperature: Temperature = 0.7,
    top_p: TopP = 0.95,
    max_tokens: MaxTokens = 256,
    max_model_len: MaxModelLen = None,
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
    force: Force = False,
    max_error_rate: MaxErrorRate = 0.1,
):
    """Critique and revise RUN/responses.jsonl, round after round, into RUN/revisions.jsonl."""
    run_dir = RunDir(run)
    loaded = load_constitution(constitution)
    first = first_record(run_dir.require("responses.jsonl", "cai generate"), ResponseRecord)
    if first:
        model = model or first.provenance.model
        style = style or Style(first.provenance.style)
    config = CritiqueConfig(
        model or DEFAULT_MODEL, style or Style.chat, rounds, seed, SamplingConfig(temperature, top_p, max_tokens, seed)
    )
    engine = jobs.open_engine(config.model, max_model_len=max_model_len)
    _report([jobs.critique(run_dir, engine, loaded, config, chunk_size, force)], max_error_rate)


@app.command()
def sample(
    prompts: Annotated[Path, typer.Option(help="JSONL(.gz), JSON, CSV or Parquet prompts.")],
    run: RunOpt,
    model: Model = DEFAULT_MODEL,
    n: Annotated[int, typer.Option("-n", min=2, help="Answers per prompt.")] = 2,
    limit: Limit = None,
    prompt_field: PromptField = "prompt",
    style: StyleOpt = Style.chat,
    temperature: Temperature = 1.0,
    top_p: TopP = 0.95,
    max_tokens: MaxTokens = 256,
    seed: Seed = 0,
    max_model_len: MaxModelLen = None,
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
    force: Force = False,
    max_error_rate: MaxErrorRate = 0.1,
):
    """Write N answers per prompt into RUN/samples.jsonl, for the AI judge to compare."""
    config = GenerateConfig(model, style, SamplingConfig(temperature, top_p, max_tokens, seed), n)
    engine = jobs.open_engine(model, max_model_len=max_model_len)
    report = jobs.generate(RunDir(run), prompts, engine, config, prompt_field, limit, "sample", chunk_size, force)
    _report([report], max_error_rate)


def _label_config(judge, style, principles_per_pair, cot, no_swap, cot_min, cot_max, seed) -> LabelConfig:
    return LabelConfig(judge, style, principles_per_pair, not no_swap, cot, (cot_min, cot_max), seed=seed)


@app.command()
def label(
    run: RunOpt,
    judge_model: JudgeModel = None,
    constitution: ConstitutionOpt = DEFAULT_CONSTITUTION,
    principles_per_pair: PrinciplesPerPair = 1,
    cot: Cot = False,
    no_swap: NoSwap = False,
    cot_min: CotMin = 0.4,
    cot_max: CotMax = 0.6,
    style: Annotated[Optional[Style], typer.Option(help="Default: the style of the samples.")] = None,
    seed: Seed = 0,
    max_model_len: MaxModelLen = None,
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
    force: Force = False,
    max_error_rate: MaxErrorRate = 0.1,
):
    """Label every pair of answers in RUN/samples.jsonl with the AI judge: RUN/preferences.jsonl."""
    run_dir = RunDir(run)
    loaded = load_constitution(constitution)
    first = first_record(run_dir.require("samples.jsonl", "cai sample"), SampleRecord)
    judge = judge_model or (first.provenance.model if first else DEFAULT_MODEL)
    style = style or (Style(first.provenance.style) if first else Style.chat)
    config = _label_config(judge, style, principles_per_pair, cot, no_swap, cot_min, cot_max, seed)
    engine = jobs.open_engine(judge, max_model_len=max_model_len)
    _report([jobs.label(run_dir, engine, loaded, config, chunk_size, force)], max_error_rate)


@eval_app.command("judge")
def eval_judge(
    pairs: Annotated[Path, typer.Option(help="Pairs humans judged (hh-rlhf chosen/rejected by default).")],
    chosen_field: Annotated[str, typer.Option(help="The field of the answer humans preferred.")] = "chosen",
    rejected_field: Annotated[str, typer.Option(help="The field of the other answer.")] = "rejected",
    limit: Limit = None,
    judge_model: Annotated[str, typer.Option(help="The judge.")] = DEFAULT_MODEL,
    constitution: ConstitutionOpt = DEFAULT_CONSTITUTION,
    principles_per_pair: PrinciplesPerPair = 1,
    cot: Cot = False,
    no_swap: NoSwap = False,
    cot_min: CotMin = 0.4,
    cot_max: CotMax = 0.6,
    style: StyleOpt = Style.chat,
    seed: Seed = 0,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for per-pair results.")] = Path("runs/eval-judge"),
    max_model_len: MaxModelLen = None,
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
    force: Force = False,
):
    """Run the judge on human-labelled pairs and print accuracy, position bias and calibration."""
    loaded = load_constitution(constitution)
    config = _label_config(judge_model, style, principles_per_pair, cot, no_swap, cot_min, cot_max, seed)
    engine = jobs.open_engine(judge_model, max_model_len=max_model_len)
    summary = jobs.eval_judge(
        pairs, out_dir, engine, loaded, config, chosen_field, rejected_field, limit, chunk_size, force
    )
    print(json.dumps(summary, indent=2))
    err.print(f"per-pair results: {out_dir / 'judgements.jsonl'}")


def _trl_overrides(max_steps, epochs, learning_rate, batch_size, sets) -> dict:
    from cai.train.common import parse_sets

    flags = {"max_steps": max_steps, "num_train_epochs": epochs, "learning_rate": learning_rate,
             "per_device_train_batch_size": batch_size}
    return {**parse_sets(sets or []), **flags}


def _trained(info: dict, out_dir: Path) -> None:
    metrics = {k: round(v, 4) if isinstance(v, float) else v for k, v in info["metrics"].items()}
    out.print(f"{info['job']}: trained in {info['seconds']} s; model saved to {out_dir}")
    out.print(json.dumps(metrics))


def _policy_training(name: str, doc: str, train):
    """`cai train sft` and `cai train dpo`: the same options, another TRL trainer."""

    def command(
        data: TrainData,
        model: Model,
        out_dir: Out,
        config: ConfigFile = None,
        max_steps: MaxSteps = None,
        epochs: Epochs = None,
        learning_rate: LearningRate = None,
        batch_size: BatchSize = None,
        lora: Lora = False,
        set_: Sets = None,
    ):
        overrides = _trl_overrides(max_steps, epochs, learning_rate, batch_size, set_)
        _trained(train()(data, model, out_dir, config, overrides, lora), out_dir)

    command.__doc__ = doc
    train_app.command(name)(command)


def _sft():
    from cai.train.sft import train_sft

    return train_sft


def _dpo():
    from cai.train.preference import train_dpo

    return train_dpo


_policy_training("sft", "SL-CAI fine-tuning with TRL's SFTTrainer (loss on the assistant's answer only).", _sft)
_policy_training("dpo", "Train the policy directly on the preference set with TRL's DPOTrainer.", _dpo)


@train_app.command("pm")
def train_pm(
    data: Annotated[Path, typer.Option(help="The preference set (cai export prefs).")],
    model: Model,
    out_dir: Out,
    loss: Annotated[str, typer.Option(help="soft: cross-entropy with p_chosen (the paper); margin: TRL's margin; hard: labels only.")] = "soft",
    config: ConfigFile = None,
    max_steps: MaxSteps = None,
    epochs: Epochs = None,
    learning_rate: LearningRate = None,
    batch_size: BatchSize = None,
    lora: Lora = False,
    set_: Sets = None,
):
    """Train a preference model (one score per answer) with TRL's RewardTrainer."""
    from cai.train.preference import train_pm as run

    _trained(run(data, model, out_dir, loss, config, _trl_overrides(max_steps, epochs, learning_rate, batch_size, set_), lora), out_dir)


@train_app.command("ppo")
def train_ppo(
    prompts: Annotated[Path, typer.Option(help="Red-team prompts, in any format cai generate reads.")],
    policy: Annotated[str, typer.Option(help="The policy to train (e.g. the SL-CAI model).")],
    reward_model: Annotated[str, typer.Option(help="The preference model (cai train pm).")],
    out_dir: Out,
    kl_coef: Annotated[Optional[float], typer.Option(min=0.0, help="KL penalty towards the starting policy.")] = None,
    algo: Annotated[str, typer.Option(help="ppo, rloo or grpo.")] = "ppo",
    limit: Limit = None,
    config: ConfigFile = None,
    max_steps: MaxSteps = None,
    epochs: Epochs = None,
    learning_rate: LearningRate = None,
    batch_size: BatchSize = None,
    lora: Lora = False,
    set_: Sets = None,
):
    """RLAIF: train the policy against the preference model (PPO, or RLOO / GRPO)."""
    from cai.train.rl import train_rl

    overrides = _trl_overrides(max_steps, epochs, learning_rate, batch_size, set_)
    if algo == "ppo" and overrides.pop("max_steps") is not None:
        raise CaiError("PPO counts episodes, not steps: use --set total_episodes=N")
    _trained(train_rl(prompts, policy, reward_model, out_dir, algo, kl_coef, limit, config, overrides, lora), out_dir)


@eval_app.command("pm")
def eval_pm(
    model: Annotated[str, typer.Option(help="The preference model.")],
    pairs: Annotated[Path, typer.Option(help="Labelled pairs (hh-rlhf chosen/rejected by default).")],
    chosen_field: Annotated[str, typer.Option(help="The field of the preferred answer.")] = "chosen",
    rejected_field: Annotated[str, typer.Option(help="The field of the other answer.")] = "rejected",
    limit: Limit = None,
):
    """Accuracy of a preference model on labelled pairs, as JSON."""
    from cai.train.preference import eval_pm as run

    print(json.dumps(run(model, pairs, chosen_field, rejected_field, limit), indent=2))


@bench_app.command("critique")
def bench_critique(
    run: Annotated[Path, typer.Option("--run", help="A run folder with responses.jsonl (left unchanged).")],
    rounds: Annotated[int, typer.Option(min=1, help="Critique/revision rounds.")] = 4,
    constitution: ConstitutionOpt = DEFAULT_CONSTITUTION,
    model: Model = DEFAULT_MODEL,
    max_tokens: MaxTokens = 256,
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
):
    """The whole critique loop through cai, then the same requests straight to vLLM; prints JSON."""
    from cai.bench import critique_overhead

    responses = RunDir(run).require("responses.jsonl", "cai generate")
    config = CritiqueConfig(model, rounds=rounds, sampling=SamplingConfig(max_tokens=max_tokens))
    engine = jobs.open_engine(model)
    engine.show_progress = False
    result = critique_overhead(responses, engine, load_constitution(constitution), config, chunk_size)
    print(json.dumps(result, indent=2))


@export_app.command("prefs")
def export_prefs(
    run: RunOpt,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Default: RUN/prefs.jsonl.")] = None,
    min_confidence: Annotated[float, typer.Option(min=0.5, max=1.0, help="Keep pairs with p_chosen at least this.")] = 0.5,
    mix: Annotated[Optional[Path], typer.Option(help="Human-labelled pairs to blend in (hh-rlhf chosen/rejected, or prompt/chosen/rejected).")] = None,
    mix_ratio: Annotated[float, typer.Option(min=0.0, max=0.99, help="Share of the result from --mix.")] = 0.5,
    seed: Seed = 0,
):
    """Write the preference set for TRL's RewardTrainer and DPOTrainer."""
    pairs = _human_pairs(mix) if mix else None  # read first: a bad --mix file stops before any writing
    report = jobs.export_prefs(RunDir(run), output, min_confidence)
    _report([_mix_prefs(RunDir(run), report, mix, pairs, mix_ratio, seed) if mix else report])


@export_app.command("sft")
def export_sft(
    run: RunOpt,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Default: RUN/sft.jsonl.")] = None,
    all_rounds: Annotated[bool, typer.Option(help="One row per round's revision, as the paper trained.")] = False,
    mix: Annotated[Optional[Path], typer.Option(help="Helpful conversations to blend in.")] = None,
    mix_ratio: Annotated[float, typer.Option(min=0.0, max=0.99, help="Share of the result from --mix.")] = 0.5,
    seed: Seed = 0,
):
    """Write the SFT set in TRL's conversational format."""
    _report([jobs.export_sft(RunDir(run), output, all_rounds, mix, mix_ratio if mix else 0.0, seed)])


@app.command()
def demo(
    run: RunOpt = Path("runs/demo"),
    limit: Annotated[Optional[int], typer.Option(min=1, help="Use the first N bundled prompts.")] = None,
    rounds: Annotated[int, typer.Option(min=1, help="Critique/revision rounds.")] = 4,
    model: Model = DEFAULT_MODEL,
    max_tokens: MaxTokens = 160,
):
    """The whole SL-CAI path on the bundled red-team prompts: generate, critique, export sft."""
    run_dir = RunDir(run)
    sampling = SamplingConfig(max_tokens=max_tokens)
    loaded = load_constitution(DEFAULT_CONSTITUTION)
    engine = jobs.open_engine(model)  # one engine for every step, so its prefix cache carries over
    # force: a demo rerun with other options simply replaces the last one.
    reports = [
        jobs.generate(run_dir, DEMO_PROMPTS, engine, GenerateConfig(model, sampling=sampling), limit=limit, force=True),
        jobs.critique(run_dir, engine, loaded, CritiqueConfig(model, rounds=rounds, sampling=sampling), force=True),
        jobs.export_sft(run_dir),
    ]
    _report(reports)
    out.print(f"rounds: {rounds}; manifest: {run_dir.manifest_path}")


# --- `cai export prefs --mix`: human-labelled pairs blended into the AI-labelled preference set ----


def _human_pairs(mix: Path) -> list:
    from cai.inputs import load_pairs

    pairs, problems = load_pairs(mix, stage="export_prefs")
    for p in problems:
        logging.getLogger("cai").warning("%s:%s: %s", mix, p.line, p.reason)
    if not pairs:
        raise CaiError(f"{mix}: no usable pairs to mix in")
    return pairs


def _mix_prefs(run: RunDir, report: jobs.JobReport, mix: Path, pairs: list, ratio: float, seed: int) -> jobs.JobReport:
    """Rewrite the exported preference set with human pairs from `mix` making up `ratio` of it."""
    from cai.export import mix_prefs
    from cai.inputs import sha256_of
    from cai.records import PreferenceRecord
    from cai.run import now, read_jsonl, write_jsonl

    rows, added = mix_prefs(read_jsonl(report.output, PreferenceRecord), pairs, ratio, seed)
    write_jsonl(report.output, rows)
    run.record_stage(
        "export_prefs_mix",
        {"output": str(report.output), "mix": str(mix), "mix_sha256": sha256_of(mix), "mix_ratio": ratio,
         "seed": seed, "human_rows": added, "rows_out": len(rows), "finished": now()},
    )
    notes = report.notes + [f"mixed in {added} human-labelled pairs from {mix} ({added / max(len(rows), 1):.0%} of the rows)"]
    return jobs.JobReport(report.stage, report.rows_in, len(rows), report.output, notes=notes)


def main() -> None:
    try:
        app()
    except CaiError as e:
        if _debug:
            raise
        err.print(f"[red]error:[/red] {e}", highlight=False)
        sys.exit(1)
