"""The `cai` command line: constitution tools, jobs, exports and the demo."""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from collections import Counter
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
from cai.cli_options import ConfigOptions, default_of, option, with_options
from cai.engine import SamplingConfig
from cai.engine_config import EngineConfig, parse_engine_args
from cai.executors import ExecutorConfig
from cai.progress import settings as progress_settings
from cai.quality import DEFAULT_DROP, FLAGS, QualityConfig, parse_flags
from cai.errors import CaiError
from cai.importers import from_anthropic, from_hf, write_constitution
from cai.models import DEFAULT_MODEL, prepare_default_model, resolve_model
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

# Options shared by several commands (those of the engine, sampling, quality and executor come
# from their config classes, through cai.cli_options).
Model = Annotated[str, option(EngineConfig, "model")]
StyleOpt = Annotated[Style, typer.Option(help="chat: the model's chat template; transcript: Human:/Assistant: text.")]
Seed = Annotated[int, option(SamplingConfig, "seed")]
RunOpt = Annotated[Path, typer.Option("--run", help="Run folder.")]
Limit = Annotated[Optional[int], typer.Option(min=1, help="Use the first N rows of the input.")]
PromptField = Annotated[str, typer.Option(help="The field holding the prompt text.")]
ConstitutionOpt = Annotated[Path, typer.Option(help="Constitution YAML.")]
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
ChunkSize = Annotated[int, typer.Option(min=1, help="Examples per chunk: the unit of work, of resume and of each batched engine call.")]
MaxErrorRate = Annotated[float, typer.Option(min=0.0, max=1.0, help="Exit non-zero when a larger share of rows fails.")]
DropFlags = Annotated[str, typer.Option(help=f"Comma-separated quality flags that leave a row out ({', '.join(FLAGS)}).")]
KeepFlagged = Annotated[bool, typer.Option("--keep-flagged", help="Keep flagged rows (they keep their flags).")]


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option(help="Show tracebacks, engine logs and vLLM's progress bars.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display (for scripts).")] = False,
):
    global _debug
    _debug = debug
    progress_settings["enabled"] = not quiet
    # On a terminal, rich's layout; into a file or pipe, one plain line per message (rich would wrap it).
    plain = logging.StreamHandler(sys.stderr)
    plain.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False, show_time=False) if err.is_terminal else plain],
    )
    if not debug:
        # The libraries' own chatter (vLLM, torch's C++ and Python warnings, transformers' and
        # accelerate's notes, the Hub libraries' loading bars; the trainers' own progress bar
        # stays) is kept out of the progress display; set here, stages inherit it.
        for variable, value in (("VLLM_LOGGING_LEVEL", "ERROR"), ("TORCH_CPP_LOG_LEVEL", "ERROR"), ("TORCH_LOGS", "-all"),
                                ("TRANSFORMERS_VERBOSITY", "error"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
                                ("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")):
            os.environ.setdefault(variable, value)
        warnings.filterwarnings("ignore")
        for noisy in ("vllm", "transformers", "accelerate", "httpx"):
            logging.getLogger(noisy).setLevel(logging.ERROR)


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


def _problems(e: InvalidFile, path: Path) -> None:
    """Every problem of a file, one a line, then exit 1."""
    for problem in e.problems:
        err.print(str(problem), markup=False, highlight=False)
    err.print(f"[red]{len(e.problems)} problem(s) in {path}[/red]")
    raise typer.Exit(1)


@constitution_app.command("check")
def constitution_check(path: Path):
    """Validate a constitution and print a summary, or every problem with its line."""
    try:
        loaded = load_constitution(path)
    except InvalidFile as e:
        _problems(e, path)
    c = loaded.constitution
    out.print(f"[green]ok[/green] {path}: {c.name} (version {c.version})")
    out.print(f"  critique_revision: {len(c.critique_revision)} principles: {', '.join(p.id for p in c.critique_revision)}")
    out.print(f"  preference:        {len(c.preference)} principles: {', '.join(p.id for p in c.preference)}")
    tags = Counter(tag for p in c.preference for tag in p.tags)
    out.print(f"  tags:              {', '.join(f'{t} {n}' for t, n in tags.items()) or 'none'}")
    out.print(f"  rules:             {len(c.rules)} rules: {', '.join(r.id for r in c.rules)}")
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


ENGINE = ConfigOptions(EngineConfig, "engine", flags={"servers": "server", "engine_args": "engine_arg"},
                       parse={"engine_args": parse_engine_args})
JUDGE_ENGINE = ConfigOptions(EngineConfig, "judge_engine", prefix="judge_",
                             flags={"servers": "server", "engine_args": "engine_arg"},
                             parse={"engine_args": parse_engine_args}, defaults={"model": None})
POLICY_ENGINE = ConfigOptions(EngineConfig, "engine", flags={"servers": "server", "engine_args": "engine_arg"},
                              parse={"engine_args": parse_engine_args}, defaults={"model": None})
EXECUTOR = ConfigOptions(ExecutorConfig, "executor")
QUALITY = ConfigOptions(QualityConfig, "quality")
SAMPLING = ConfigOptions(SamplingConfig, "sampling")
SAMPLING_HOT = ConfigOptions(SamplingConfig, "sampling", defaults={"temperature": 1.0})


def _run_stage(run: RunDir, stage, executor: ExecutorConfig, chunk_size: int, force: bool) -> jobs.JobReport:
    if _debug:
        stage.engine.show_progress = True
    return jobs.execute(run, stage, executor.make(), chunk_size, force)


def _from_first_row(path: Path, record_type, engine: EngineConfig, style: Optional[Style]) -> tuple[EngineConfig, Style]:
    """Model and style default to those that wrote the earlier stage's rows."""
    try:
        first = first_record(path, record_type)
    except ValueError:
        first = None
    if engine.model is None:
        engine.model = first.provenance.model if first else DEFAULT_MODEL
    return engine, style or (Style(first.provenance.style) if first else Style.chat)


@app.command()
@with_options(ENGINE, SAMPLING, QUALITY, EXECUTOR)
def generate(
    prompts: Annotated[Path, typer.Option(help="JSONL(.gz), JSON, CSV or Parquet prompts.")],
    run: RunOpt,
    engine: EngineConfig,
    sampling: SamplingConfig,
    quality: QualityConfig,
    executor: ExecutorConfig,
    limit: Limit = None,
    prompt_field: PromptField = "prompt",
    style: StyleOpt = Style.chat,
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
    force: Force = False,
    max_error_rate: MaxErrorRate = 0.1,
):
    """Write the model's first answer to each prompt into RUN/responses.jsonl."""
    config = GenerateConfig(engine.model, style, sampling, quality=quality)
    stage = jobs.generate_stage(prompts, config, engine, prompt_field, limit)
    _report([_run_stage(RunDir(run), stage, executor, chunk_size, force)], max_error_rate)


@app.command()
@with_options(POLICY_ENGINE, SAMPLING, QUALITY, EXECUTOR)
def critique(
    run: RunOpt,
    engine: EngineConfig,
    sampling: SamplingConfig,
    quality: QualityConfig,
    executor: ExecutorConfig,
    rounds: Annotated[int, typer.Option(min=1, help="Critique/revision rounds.")] = 4,
    constitution: ConstitutionOpt = DEFAULT_CONSTITUTION,
    style: Annotated[Optional[Style], typer.Option(help="Default: the style of the responses.")] = None,
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
    force: Force = False,
    max_error_rate: MaxErrorRate = 0.1,
):
    """Critique and revise RUN/responses.jsonl, round after round, into RUN/revisions.jsonl.

    The model (default: the one that wrote the responses) is --model."""
    run_dir = RunDir(run)
    loaded = load_constitution(constitution)
    engine, style = _from_first_row(run_dir.require("responses.jsonl", "cai generate"), ResponseRecord, engine, style)
    config = CritiqueConfig(engine.model, style, rounds, sampling.seed, sampling, quality)
    stage = jobs.critique_stage(run_dir, loaded, config, engine)
    _report([_run_stage(run_dir, stage, executor, chunk_size, force)], max_error_rate)


@app.command()
@with_options(ENGINE, SAMPLING_HOT, QUALITY, EXECUTOR)
def sample(
    prompts: Annotated[Path, typer.Option(help="JSONL(.gz), JSON, CSV or Parquet prompts.")],
    run: RunOpt,
    engine: EngineConfig,
    sampling: SamplingConfig,
    quality: QualityConfig,
    executor: ExecutorConfig,
    n: Annotated[int, typer.Option("-n", min=2, help="Answers per prompt.")] = 2,
    limit: Limit = None,
    prompt_field: PromptField = "prompt",
    style: StyleOpt = Style.chat,
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
    force: Force = False,
    max_error_rate: MaxErrorRate = 0.1,
):
    """Write N answers per prompt into RUN/samples.jsonl, for the AI judge to compare."""
    config = GenerateConfig(engine.model, style, sampling, n, quality)
    stage = jobs.generate_stage(prompts, config, engine, prompt_field, limit, "sample")
    _report([_run_stage(RunDir(run), stage, executor, chunk_size, force)], max_error_rate)


def _one_of(*choices: str):
    """An option's check that its value is one of `choices` (run when the command line is parsed,
    so that `cai run` reports a bad value before any stage starts)."""
    def check(value: str) -> str:
        if value not in choices:
            raise typer.BadParameter(f"'{value}' is not one of {', '.join(choices)}")
        return value
    return check


def _label_config(judge, style, principles_per_pair, cot, no_swap, cot_min, cot_max, seed,
                  drop_flags: str = ",".join(DEFAULT_DROP), keep_flagged: bool = False) -> LabelConfig:
    return LabelConfig(judge, style, principles_per_pair, not no_swap, cot, (cot_min, cot_max), seed=seed,
                       drop_flags=parse_flags(drop_flags), keep_flagged=keep_flagged)


@app.command()
@with_options(JUDGE_ENGINE, EXECUTOR)
def label(
    run: RunOpt,
    judge_engine: EngineConfig,
    executor: ExecutorConfig,
    constitution: ConstitutionOpt = DEFAULT_CONSTITUTION,
    principles_per_pair: PrinciplesPerPair = 1,
    cot: Cot = False,
    no_swap: NoSwap = False,
    cot_min: CotMin = 0.4,
    cot_max: CotMax = 0.6,
    style: Annotated[Optional[Style], typer.Option(help="Default: the style of the samples.")] = None,
    seed: Seed = 0,
    drop_flags: DropFlags = ",".join(DEFAULT_DROP),
    keep_flagged: KeepFlagged = False,
    calibration: Annotated[Optional[Path], typer.Option(help="A calibration of the judge (cai eval judge --fit-calibration) applied to its labels; the raw ones are kept as p_chosen_raw, margin_raw.")] = None,
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
    force: Force = False,
    max_error_rate: MaxErrorRate = 0.1,
):
    """Label every pair of answers in RUN/samples.jsonl with the AI judge: RUN/preferences.jsonl.

    The judge (default: the model that wrote the samples) is --judge-model; pairs with a flagged
    answer are skipped unless --keep-flagged."""
    from cai.calibrate import load_calibration

    run_dir = RunDir(run)
    loaded = load_constitution(constitution)
    judge, style = _from_first_row(run_dir.require("samples.jsonl", "cai sample"), SampleRecord, judge_engine, style)
    config = _label_config(judge.model, style, principles_per_pair, cot, no_swap, cot_min, cot_max, seed, drop_flags, keep_flagged)
    if calibration is not None:
        config.calibration, config.calibration_sha256, fitted = load_calibration(calibration)
        if fitted.get("judge_model") not in (None, judge.model):
            err.print(f"[yellow]note: {calibration} was fitted for the judge {fitted['judge_model']}, not {judge.model}[/yellow]")
    stage = jobs.label_stage(run_dir, loaded, config, judge)
    _report([_run_stage(run_dir, stage, executor, chunk_size, force)], max_error_rate)


@eval_app.command("judge")
@with_options(JUDGE_ENGINE, EXECUTOR)
def eval_judge(
    pairs: Annotated[Path, typer.Option(help="Pairs humans judged (hh-rlhf chosen/rejected by default).")],
    judge_engine: EngineConfig,
    executor: ExecutorConfig,
    chosen_field: Annotated[str, typer.Option(help="The field of the answer humans preferred.")] = "chosen",
    rejected_field: Annotated[str, typer.Option(help="The field of the other answer.")] = "rejected",
    limit: Limit = None,
    constitution: ConstitutionOpt = DEFAULT_CONSTITUTION,
    principles_per_pair: PrinciplesPerPair = 1,
    cot: Cot = False,
    no_swap: NoSwap = False,
    cot_min: CotMin = 0.4,
    cot_max: CotMax = 0.6,
    style: StyleOpt = Style.chat,
    seed: Seed = 0,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for per-pair results.")] = Path("runs/eval-judge"),
    fit_calibration: Annotated[Optional[Path], typer.Option(help="Fit a calibration of the judge's labels to the human choices and write it here (JSON, or YAML for .yaml), for cai label --calibration.")] = None,
    calibration_method: Annotated[str, typer.Option(help="temperature: p' = sigmoid(logit(p)/T); platt: sigmoid(a·logit(p)+b), b also corrects position bias.",
                                                    callback=_one_of("temperature", "platt"))] = "temperature",
    folds: Annotated[int, typer.Option(min=2, help="Cross-validation folds for the calibration's held-out ECE.")] = 5,
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
    force: Force = False,
):
    """Run the judge on human-labelled pairs and print accuracy (with its interval and kappa),
    position and length bias, calibration, each principle's accuracy and the cost, as JSON."""
    loaded = load_constitution(constitution)
    judge_engine.model = judge_engine.model or DEFAULT_MODEL
    config = _label_config(judge_engine.model, style, principles_per_pair, cot, no_swap, cot_min, cot_max, seed)
    stage = jobs.eval_judge_stage(pairs, loaded, config, judge_engine, chosen_field, rejected_field, limit)
    run_dir = RunDir(out_dir)
    with run_dir.locked():  # the summary too: the whole job holds the folder
        report = _run_stage(run_dir, stage, executor, chunk_size, force)
        fitted = jobs.eval_judge_calibration(report, config, calibration_method, folds, fit_calibration) if fit_calibration else None
        summary = jobs.eval_judge_summary(run_dir, report, config, fitted)
    print(json.dumps(summary, indent=2))
    err.print(f"per-pair results: {report.output}")
    if fit_calibration:
        err.print(f"calibration ({calibration_method}): {fit_calibration}")


def _trl_overrides(max_steps, epochs, learning_rate, batch_size, sets) -> dict:
    from cai.train.common import parse_sets

    flags = {"max_steps": max_steps, "num_train_epochs": epochs, "learning_rate": learning_rate,
             "per_device_train_batch_size": batch_size}
    return {**parse_sets(sets or []), **{k: v for k, v in flags.items() if v is not None}}  # a flag not given keeps --set's


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
    loss: Annotated[str, typer.Option(help="soft: cross-entropy with p_chosen (the paper); margin: TRL's margin; hard: labels only.",
                                      callback=_one_of("soft", "margin", "hard"))] = "soft",
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
    algo: Annotated[str, typer.Option(help="ppo, rloo or grpo.", callback=_one_of("ppo", "rloo", "grpo"))] = "ppo",
    limit: Limit = None,
    config: ConfigFile = None,
    max_steps: MaxSteps = None,
    epochs: Epochs = None,
    learning_rate: LearningRate = None,
    batch_size: BatchSize = None,
    lora: Lora = False,
    set_: Sets = None,
    rule_model: Annotated[Optional[str], typer.Option(help="A rule model (cai train rules) added to the reward; rloo and grpo only.")] = None,
    rule_weight: Annotated[float, typer.Option(min=0.0, help="β in R = R_pref + β·R_rules.")] = 1.0,
    rule_weights: Annotated[Optional[Path], typer.Option(help="The rules' weights fitted to people (cai fit rules): R_rules is then their weighted sum of the rule model's log-odds.")] = None,
):
    """RLAIF: train the policy against the preference model (PPO, or RLOO / GRPO, optionally plus rule models)."""
    from cai.train.rl import train_rl

    overrides = _trl_overrides(max_steps, epochs, learning_rate, batch_size, set_)
    if algo == "ppo" and overrides.pop("max_steps", None) is not None:
        raise CaiError("PPO counts episodes, not steps: use --set total_episodes=N")
    _trained(train_rl(prompts, policy, reward_model, out_dir, algo, kl_coef, limit, config, overrides, lora,
                      rule_model, rule_weight, rule_weights), out_dir)


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
    model: Annotated[str, option(EngineConfig, "model")] = DEFAULT_MODEL,
    max_tokens: Annotated[int, option(SamplingConfig, "max_tokens")] = default_of(SamplingConfig, "max_tokens"),
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
):
    """The whole critique loop through cai, then the same requests straight to vLLM; prints JSON."""
    from cai.bench import critique_overhead

    responses = RunDir(run).require("responses.jsonl", "cai generate")
    config = CritiqueConfig(model, rounds=rounds, sampling=SamplingConfig(max_tokens=max_tokens))
    result = critique_overhead(responses, EngineConfig(model), load_constitution(constitution), config, chunk_size)
    print(json.dumps(result, indent=2))


@bench_app.command("scale")
def bench_scale(
    model: Model = DEFAULT_MODEL,
    sizes: Annotated[str, typer.Option(help="Input sizes for the memory measurement, comma-separated.")] = "1000,100000",
    resume_prompts: Annotated[int, typer.Option(min=1, help="Prompts for the resume measurement (0: skip it).")] = 20000,
    max_tokens: Annotated[int, option(SamplingConfig, "max_tokens")] = 1,
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
):
    """Peak RSS of `cai generate` against input size, and the cost of a rerun after a kill at 90%."""
    from cai import bench_scale

    result = {"memory": bench_scale.memory(model, [int(n) for n in sizes.split(",")], max_tokens, chunk_size)}
    if resume_prompts:
        result["resume"] = bench_scale.resume(model, resume_prompts, max_tokens, chunk_size)
    print(json.dumps(result, indent=2))


@bench_app.command("load")
def bench_load(
    model: Model = DEFAULT_MODEL,
    repeats: Annotated[int, typer.Option(min=1, help="Fresh processes per way of opening.")] = 3,
):
    """Seconds to open the model in cai against vLLM's own LLM(...), each in a fresh process."""
    from cai.bench_load import load_times

    print(json.dumps(load_times(resolve_model(model), repeats, progress=err.print), indent=2))


@bench_app.command("executors")
def bench_executors(
    model: Model = DEFAULT_MODEL,
    prompts: Annotated[int, typer.Option(min=1, help="Synthetic prompts.")] = 4096,
    max_tokens: Annotated[int, option(SamplingConfig, "max_tokens")] = 16,
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
    ray_address: Annotated[Optional[str], typer.Option(help="A Ray cluster (default: one started here).")] = None,
    server: Annotated[Optional[list[str]], typer.Option(help="Also through these OpenAI-compatible servers of --model.")] = None,
    tokenizer: Annotated[Optional[str], typer.Option(help="With --server: the tokenizer folder (default: --model).")] = None,
    served_model: Annotated[Optional[str], typer.Option(help="With --server: the name the servers serve --model by (default: --model).")] = None,
):
    """The same requests on the in-process engine, the Ray executor (one replica) and, with --server,
    the HTTP backend: throughput while computing chunks, against the in-process engine."""
    from cai import bench_scale

    ray = ["--executor", "ray", "--replicas", "1"] + (["--ray-address", ray_address] if ray_address else [])
    executors = {"local": [], "ray": ray}
    if server:  # the last --model given is the one cai generate takes
        executors["http"] = ([a for url in server for a in ("--server", url)] + ["--tokenizer", tokenizer or model]
                             + ["--model", served_model or model])
    print(json.dumps(bench_scale.throughput(model, prompts, executors, max_tokens, chunk_size), indent=2))


@export_app.command("prefs")
def export_prefs(
    run: RunOpt,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Default: RUN/prefs.jsonl.")] = None,
    min_confidence: Annotated[float, typer.Option(min=0.5, max=1.0, help="Keep pairs with p_chosen at least this.")] = 0.5,
    drop_flags: DropFlags = ",".join(DEFAULT_DROP),
    keep_flagged: KeepFlagged = False,
    mix: Annotated[Optional[Path], typer.Option(help="Human-labelled pairs to blend in (hh-rlhf chosen/rejected, or prompt/chosen/rejected).")] = None,
    mix_ratio: Annotated[float, typer.Option(min=0.0, max=0.99, help="Share of the result from --mix.")] = 0.5,
    seed: Seed = 0,
):
    """Write the preference set for TRL's RewardTrainer and DPOTrainer (AI labels, plus human ones with --mix)."""
    report = jobs.export_prefs(RunDir(run), output, min_confidence, parse_flags(drop_flags), keep_flagged,
                               mix, mix_ratio if mix else 0.0, seed)
    _report([report])


@export_app.command("sft")
def export_sft(
    run: RunOpt,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Default: RUN/sft.jsonl.")] = None,
    all_rounds: Annotated[bool, typer.Option(help="One row per round's revision, as the paper trained.")] = False,
    mix: Annotated[Optional[Path], typer.Option(help="Helpful conversations to blend in.")] = None,
    mix_ratio: Annotated[float, typer.Option(min=0.0, max=0.99, help="Share of the result from --mix.")] = 0.5,
    drop_flags: DropFlags = ",".join(DEFAULT_DROP),
    keep_flagged: KeepFlagged = False,
    seed: Seed = 0,
):
    """Write the SFT set in TRL's conversational format, leaving out flagged revisions."""
    report = jobs.export_sft(RunDir(run), output, all_rounds, mix, mix_ratio if mix else 0.0, seed,
                             parse_flags(drop_flags), keep_flagged)
    _report([report])


@app.command()
def demo(
    run: RunOpt = Path("runs/demo"),
    limit: Annotated[Optional[int], typer.Option(min=1, help="Use the first N bundled prompts.")] = None,
    rounds: Annotated[int, typer.Option(min=1, help="Critique/revision rounds.")] = 4,
    model: Annotated[str, option(EngineConfig, "model")] = DEFAULT_MODEL,
    max_tokens: Annotated[int, option(SamplingConfig, "max_tokens")] = 160,
):
    """The whole SL-CAI path on the bundled red-team prompts: generate, critique, export sft."""
    run_dir = RunDir(run)
    sampling = SamplingConfig(max_tokens=max_tokens)
    loaded = load_constitution(DEFAULT_CONSTITUTION)
    engine, local = EngineConfig(model), ExecutorConfig()  # one engine serves every step
    # force: a demo rerun with other options simply replaces the last one. One lock for all three steps.
    with run_dir.locked():
        reports = [_run_stage(run_dir, jobs.generate_stage(DEMO_PROMPTS, GenerateConfig(model, sampling=sampling), engine, limit=limit), local, jobs.CHUNK_SIZE, True)]
        critique = jobs.critique_stage(run_dir, loaded, CritiqueConfig(model, rounds=rounds, sampling=sampling), engine)
        reports += [_run_stage(run_dir, critique, local, jobs.CHUNK_SIZE, True), jobs.export_sft(run_dir)]
    _report(reports)
    out.print(f"rounds: {rounds}; manifest: {run_dir.manifest_path}")


# ---- cai report: one HTML page of a run folder ------------------------------------------------


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="The run folder.")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Default: RUN/report.html.")] = None,
    include: Annotated[Optional[list[Path]], typer.Option(
        "--include", help="Another folder to show: cai eval judge / eval policies output, trained models (repeatable).")] = None,
    examples: Annotated[int, typer.Option(min=0, help="SL-CAI examples shown in full.")] = 50,
):
    """Write a self-contained HTML page of a run: manifest, SL-CAI and RL-CAI data, evals, training curves."""
    from cai.report import write_report  # matplotlib loads only for this command

    out.print(f"report: {write_report(run, output, include or [], examples)}")


# -- rules: export the judge's rule scores, train and evaluate rule models ---------------------


@export_app.command("rules")
def export_rules(
    run: RunOpt,
    constitution: Annotated[Path, typer.Option(help="The constitution `cai rules` used (for the rule texts).")] = DEFAULT_CONSTITUTION,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Default: RUN/rules.jsonl.")] = None,
    heldout: Annotated[float, typer.Option(min=0.0, max=0.99, help="Share of prompts held back into *_heldout.jsonl.")] = 0.0,
    seed: Seed = 0,
):
    """Write the rule classifier's data set from RUN/rule_scores.jsonl: one row per response and rule."""
    from cai.rules_data import export_rules as run_export

    info = run_export(RunDir(run), load_constitution(constitution), output, heldout, seed)
    out.print(f"export rules: {info['rows_in']} scored responses → {info['rows_out']} rows in {info['output']}")
    if heldout:
        out.print(f"export rules: {info['heldout_rows']} rows held back in {info['heldout_output']}")


@train_app.command("rules")
def train_rules(
    data: Annotated[Path, typer.Option(help="The rule set (cai export rules).")],
    model: Model,
    out_dir: Out,
    max_length: Annotated[int, typer.Option(min=16, help="Most tokens per input (cut from the left).")] = 1024,
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML whose keys are TrainingArguments fields.")] = None,
    max_steps: MaxSteps = None,
    epochs: Epochs = None,
    learning_rate: LearningRate = None,
    batch_size: BatchSize = None,
    lora: Lora = False,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Any other TrainingArguments field: KEY=VALUE (repeatable).")] = None,
):
    """Train one rule model (a classifier of rule + conversation) on the judge's soft labels."""
    from cai.train.rules import train_rules as run_training

    overrides = _trl_overrides(max_steps, epochs, learning_rate, batch_size, set_)
    _trained(run_training(data, model, out_dir, config, overrides, lora, max_length), out_dir)


@eval_app.command("rules")
@with_options(JUDGE_ENGINE)
def eval_rules(
    data: Annotated[Path, typer.Option(help="Labelled rows: prompt, completion, rule, label (e.g. cai export rules --heldout).")],
    judge_engine: EngineConfig,
    model: Annotated[Optional[str], typer.Option(help="The rule model to measure (or --judge-model, to measure the judge).")] = None,
    style: StyleOpt = Style.chat,
    limit: Limit = None,
):
    """Agreement (p > 0.5 on the label's side) and calibration (ECE) of a rule model or the judge, as JSON."""
    from cai.train.rules import eval_judge_rules, eval_rules as run_eval

    if (model is None) == (judge_engine.model is None):
        raise CaiError("give one of --model (a rule model) or --judge-model (the judge)")
    if model is not None:
        summary = run_eval(model, data, limit)
    else:
        summary = eval_judge_rules(data, judge_engine.open(), style, limit)
    print(json.dumps(summary, indent=2))


# -- jobs of rules, red-team expansion and policy evaluation (cai.jobs_rules, jobs_redteam, jobs_policies)


@app.command()
@with_options(JUDGE_ENGINE, EXECUTOR)
def rules(
    run: RunOpt,
    judge_engine: EngineConfig,
    executor: ExecutorConfig,
    input_: Annotated[Optional[str], typer.Option("--input", help="samples, responses or revisions (default: the one in RUN; samples first).")] = None,
    constitution: ConstitutionOpt = DEFAULT_CONSTITUTION,
    style: Annotated[Optional[Style], typer.Option(help="Default: the style of the input rows.")] = None,
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
    force: Force = False,
    max_error_rate: MaxErrorRate = 0.1,
):
    """Judge every response in RUN against every rule of the constitution: RUN/rule_scores.jsonl.

    The judge (default: the model that wrote the responses) is --judge-model. Rows in and out are
    responses (a sample row holds several)."""
    from cai import jobs_rules
    from cai.stages.rules import RULES_INPUTS, RulesConfig

    run_dir = RunDir(run)
    loaded = load_constitution(constitution)
    kind, path = jobs_rules.rules_input(run_dir, input_)
    judge, style = _from_first_row(path, RULES_INPUTS[kind][1], judge_engine, style)
    stage = jobs_rules.rules_stage(run_dir, kind, path, loaded, RulesConfig(judge.model, style), judge)
    err.print(f"rules: judging the responses of {path}", highlight=False)
    _report([jobs_rules.in_responses(_run_stage(run_dir, stage, executor, chunk_size, force))], max_error_rate)


redteam_app = typer.Typer(help="Write new red-team prompts with a model.", no_args_is_help=True)
app.add_typer(redteam_app, name="redteam")
SAMPLING_REDTEAM = ConfigOptions(SamplingConfig, "sampling", defaults={"temperature": 1.0, "max_tokens": 64})


@redteam_app.command("expand")
@with_options(ENGINE, SAMPLING_REDTEAM, EXECUTOR)
def redteam_expand(
    seeds: Annotated[Path, typer.Option(help="Seed red-team prompts, in any format cai generate reads.")],
    n: Annotated[int, typer.Option("-n", min=1, help="New prompts to write (kept after the filter).")],
    run: RunOpt,
    engine: EngineConfig,
    sampling: SamplingConfig,
    executor: ExecutorConfig,
    shots: Annotated[int, typer.Option(min=1, help="Seed prompts shown per new prompt (drawn by --seed and slot).")] = 4,
    style: StyleOpt = Style.chat,
    min_chars: Annotated[int, typer.Option(min=0, help="Drop shorter prompts.")] = 15,
    max_chars: Annotated[int, typer.Option(min=1, help="Drop longer prompts.")] = 600,
    near_duplicate: Annotated[float, typer.Option(min=0.0, max=1.0, help="Drop prompts this similar (Jaccard of 5-character shingles) to a seed or an earlier prompt.")] = 0.55,
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
    force: Force = False,
    max_error_rate: MaxErrorRate = 0.1,
):
    """Write N new red-team prompts from few-shot prompts of seed prompts: RUN/prompts.jsonl.

    Exact and near duplicates (of each other and of the seeds) and prompts too short or too long
    are dropped and counted; more rounds are written until N are kept or a round keeps none."""
    from cai.dedup import FilterConfig
    from cai.jobs_redteam import expand
    from cai.stages.redteam import RedTeamConfig

    config = RedTeamConfig(engine.model, style, shots, sampling.seed, sampling)
    filter_config = FilterConfig(min_chars=min_chars, max_chars=max_chars, threshold=near_duplicate)
    reports = expand(RunDir(run), seeds, n, config, engine, filter_config,
                     lambda run_dir, stage: _run_stage(run_dir, stage, executor, chunk_size, force))
    _report(reports, max_error_rate)


POLICIES_ENGINE = ConfigOptions(EngineConfig, "engine", flags={"servers": "server", "engine_args": "engine_arg"},
                                parse={"engine_args": parse_engine_args}, skip=("model",))


def _child_flags() -> list[str]:
    """This command's --debug and --quiet, for the cai commands it starts."""
    return (["--debug"] if _debug else []) + ([] if progress_settings["enabled"] else ["--quiet"])


def _answer_in_subprocess(policy, run_dir: RunDir, options: list[str]) -> None:
    """`cai generate OPTIONS` for one policy in a fresh process, as a user would run it: a process
    holds one in-process vLLM engine at most (two break each other), and this one may hold the judge's."""
    import subprocess

    from cai.children import cai_env

    argv = [sys.executable, "-m", "cai", *_child_flags(), "generate", "--run", str(run_dir.path),
            "--model", policy.model, *SAMPLING.argv(policy.sampling), *options]
    err.print(f"policy {policy.name}: {' '.join(argv[1:])}", highlight=False, markup=False)
    code = subprocess.run(argv, env=cai_env()).returncode
    if code:
        raise CaiError(f"policy {policy.name}'s answers failed (cai generate exited {code}); {run_dir.path} keeps "
                       "every finished chunk: run the same command again to resume")


@eval_app.command("policies")
@with_options(POLICIES_ENGINE, JUDGE_ENGINE, SAMPLING, QUALITY, EXECUTOR)
def eval_policies(
    prompts: Annotated[Path, typer.Option(help="Held-out prompts, in any format cai generate reads.")],
    policy: Annotated[list[str], typer.Option("--policy", help="NAME=MODEL[,KEY=VALUE…] (repeatable, two or more); KEY a sampling setting of this policy's own, e.g. temperature=1.0. The first policy anchors Elo at 0.")],
    engine: EngineConfig,
    judge_engine: EngineConfig,
    sampling: SamplingConfig,
    quality: QualityConfig,
    executor: ExecutorConfig,
    tags: Annotated[str, typer.Option(help="Comma-separated principle tags: one score per tag.")] = "harmless,helpful",
    principles_per_comparison: Annotated[int, typer.Option(min=1, help="Principles of a tag drawn per prompt and averaged.")] = 1,
    limit: Limit = None,
    prompt_field: PromptField = "prompt",
    constitution: ConstitutionOpt = DEFAULT_CONSTITUTION,
    style: StyleOpt = Style.chat,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the answers, comparisons, eval.json and plots.")] = Path("runs/eval-policies"),
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
    force: Force = False,
    max_error_rate: MaxErrorRate = 0.1,
):
    """Every policy answers every prompt, the judge compares every pair of answers in both orders:
    win rates and Elo with 95% intervals per tag, in OUT/eval.json, printed and plotted.

    A policy whose engine is the judge's answers in this process (one engine serves both); any other
    answers in a `cai generate` subprocess of its own. The judge is --judge-model (default: the default model)."""
    from dataclasses import replace

    from cai import jobs_policies
    from cai.policy_stats import print_tables
    from cai.stage import stage_status
    from cai.stages.compare import CompareConfig

    loaded = load_constitution(constitution)
    judge_engine.model = judge_engine.model or DEFAULT_MODEL
    config = CompareConfig(judge_engine.model, [t.strip() for t in tags.split(",") if t.strip()], style,
                           principles_per_comparison, sampling.seed)
    jobs_policies.check_tags(loaded, config)
    policies = jobs_policies.parse_policies(policy, sampling)
    out_run = RunDir(out_dir)
    reports = []
    with out_run.locked():
        stages = {p.name: jobs_policies.answer_stage(p, prompts, engine, style, quality, prompt_field, limit) for p in policies}
        options = ["--prompts", str(prompts), "--prompt-field", prompt_field, "--style", style.value,
                   "--chunk-size", str(chunk_size), "--max-error-rate", str(max_error_rate),
                   *(["--limit", str(limit)] if limit else []), *(["--force"] if force else []),
                   *POLICIES_ENGINE.argv(engine), *QUALITY.argv(quality), *EXECUTOR.argv(executor)]
        # other engines first: on a GPU, this process's engine would leave no memory for theirs
        for p in sorted(policies, key=lambda p: stages[p.name].engine == judge_engine):
            run_dir, stage = jobs_policies.policy_run(out_run, p), stages[p.name]
            if stage.engine == judge_engine:
                reports.append(replace(_run_stage(run_dir, stage, executor, chunk_size, force), stage=f"generate {p.name}"))
            elif stage_status(run_dir, stage, chunk_size) != "done":
                _answer_in_subprocess(p, run_dir, options)
            else:
                err.print(f"policy {p.name}: answered before, in {run_dir.file('responses.jsonl')}", highlight=False)
        answers, notes = jobs_policies.join_answers(out_run, policies)
        for note in notes:
            err.print(f"[yellow]{note}[/yellow]", highlight=False)
        report = _run_stage(out_run, jobs_policies.compare_stage(out_run, answers, policies, loaded, config, judge_engine),
                            executor, chunk_size, force)
        stats = jobs_policies.finish(out_run, report, policies, config, prompts, limit)
    _report(reports + [report], max_error_rate)
    print_tables(stats, out)
    out.print(f"eval policies: {out_run.file('eval.json')}, plots in {out_run.path}")


# -- cai bench http: the HTTP backend against the in-process engine, on the same requests -------


@bench_app.command("http")
@with_options(ENGINE, SAMPLING)
def bench_http(
    engine: EngineConfig,
    sampling: SamplingConfig,
    prompts: Annotated[Path, typer.Option(help="JSONL(.gz), JSON, CSV or Parquet prompts.")] = DEMO_PROMPTS,
    local_model: Annotated[Optional[str], typer.Option(help="The model folder the servers serve, run in-process (default: --tokenizer, else --model).")] = None,
    limit: Limit = None,
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
):
    """The same generate requests in-process and through --server URLs: throughputs and overhead, as JSON."""
    from cai.bench import http_overhead

    if not engine.servers:
        raise CaiError("cai bench http needs at least one --server URL (and --model, the served name)")
    local = EngineConfig(local_model or engine.tokenizer_path(), max_model_len=engine.max_model_len,
                         engine_args=engine.engine_args)
    print(json.dumps(http_overhead(prompts, local, engine, sampling, limit, chunk_size), indent=2))


# ---- cai init and cai run: a starter project, and a whole run from one pipeline file -------------


@app.command()
def init(folder: Annotated[Path, typer.Argument(help="The project folder (new, or without the starter's files).")]):
    """Write a starter project: a commented pipeline.yaml for the whole path on the default model,
    the default constitution with its few-shot files, and demo prompts. Overwrites nothing."""
    from cai.starter import init_project

    for path in init_project(folder):
        out.print(f"wrote {path}")
    out.print(f"next: cd {folder} && cai run pipeline.yaml")


@app.command("run")
def run_pipeline(
    pipeline: Annotated[Path, typer.Argument(help="The pipeline file (`cai init` writes one).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (each stage done / to do / changed, and its output); run nothing.")] = False,
    start: Annotated[Optional[str], typer.Option("--from", help="Begin at this stage; the earlier ones are left as they are.")] = None,
    until: Annotated[Optional[str], typer.Option("--until", help="End after this stage.")] = None,
    force: Annotated[Optional[list[str]], typer.Option("--force", help="Redo this stage, done or changed (repeatable); the stages that read its output follow.")] = None,
):
    """Run a pipeline file's stages in order, each as its cai command: done ones are skipped, an
    interrupted one resumes, one whose settings changed is refused unless --force STAGE."""
    from cai import pipeline as runner
    from cai.pipeline_file import read_pipeline

    try:
        loaded = read_pipeline(pipeline)
    except InvalidFile as e:
        _problems(e, pipeline)
    steps = runner.plan(loaded, start, until, tuple(force or ()))
    if dry_run:
        runner.show(steps, loaded, out)
        return
    summary = runner.run(loaded, steps, _child_flags())
    table = Table(title="cai run")
    table.add_column("stage")
    table.add_column("what happened")
    for name, what in summary:
        table.add_row(name, what)
    out.print(table)
    run = os.path.relpath(loaded.run)
    out.print(f"manifest: {os.path.join(run, 'manifest.json')}; the page of it all: cai report {run}")


from cai.cli_trust import register as _register_fit  # cai fit rules

_register_fit(app, JUDGE_ENGINE, EXECUTOR, _run_stage, _report, out)


def main() -> None:
    try:
        app()
    except CaiError as e:
        if _debug:
            raise
        err.print(f"[red]error:[/red] {e}", highlight=False)
        sys.exit(1)
