"""What every command shares: the root app and its --debug/--quiet, the options several commands take,
the summary table, and running one stage on an executor."""

from __future__ import annotations

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

from cai.core.options import default_of
from cai.core.progress import settings as progress_settings
from cai.core.run import RunDir, first_record
from cai.engine.config import EngineConfig
from cai.engine.models import DEFAULT_MODEL
from cai.executors import ExecutorConfig
from cai.io.yaml_errors import InvalidFile
from cai.stages.critique import CritiqueConfig
from cai.stages.dialogue import Style
from cai.stages.label import LabelConfig
from cai.stages.quality import DEFAULT_DROP, FLAGS, parse_flags
from cai.workflows import jobs

app = typer.Typer(help="cai: turn a written constitution into Constitutional AI training data (SL-CAI, RL-CAI).\n\n"
                  "Exit codes: 0 done; 1 a mistake in the input (one line says which); 2 a bad command line; "
                  "3 more rows failed than --max-error-rate allows.",
                  no_args_is_help=True, pretty_exceptions_enable=False, context_settings={"help_option_names": ["-h", "--help"]})
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
flags = {"debug": False}  # set by the root callback; read by stages and child commands

# Options shared by several commands (those of the engine, sampling, quality and executor come
# from their config classes, through cai.core.options).
Model = Annotated[str, typer.Option(help="The model: the default name, a local folder or a hub id.")]
StyleOpt = Annotated[Style, typer.Option(help="chat: the model's chat template; transcript: Human:/Assistant: text.")]
Seed = Annotated[int, typer.Option(help="Seeds the principle draws.")]
RunOpt = Annotated[Path, typer.Option("--run", help="Run folder.")]
Limit = Annotated[Optional[int], typer.Option(min=1, help="Use the first N rows of the input.")]
PromptField = Annotated[str, typer.Option(help="The field holding the prompt text.")]
ConstitutionOpt = Annotated[Path, typer.Option(help="Constitution YAML.", show_default="the packaged default.yaml")]
PrinciplesPerPair = Annotated[int, typer.Option(min=1, help="Principles sampled per pair and averaged (an ensemble).")]
Cot = Annotated[bool, typer.Option("--cot", help="The judge reasons step by step first; labels are clamped.")]
NoSwap = Annotated[bool, typer.Option("--no-swap", help="Ask in one order only (no position debiasing).")]
CotMin = Annotated[float, typer.Option(min=0.0, max=0.5, help="Low clamp for chain-of-thought labels.")]
CotMax = Annotated[float, typer.Option(min=0.5, max=1.0, help="High clamp for chain-of-thought labels.")]
Out = Annotated[Path, typer.Option("--out", help="Folder for the trained model and cai_train.json.")]
TrainData = Annotated[Path, typer.Option("--data", help="sft: the SFT set (cai export sft); dpo: the preference set (cai export prefs).")]
Force = Annotated[bool, typer.Option("--force", help="Redo the stage even if the run folder holds output of other settings.")]
ChunkSize = Annotated[int, typer.Option(min=1, help="Examples per chunk: the unit of work, of resume and of each batched engine call.")]
MaxErrorRate = Annotated[float, typer.Option(min=0.0, max=1.0, help="Exit non-zero when a larger share of rows fails.")]
# Defaults that several commands share, each read from where it is decided.
MAX_ERROR_RATE = 0.1
DROP_FLAGS = ",".join(DEFAULT_DROP)
COT_LOW, COT_HIGH = default_of(LabelConfig, "cot_bounds")
ROUNDS = default_of(CritiqueConfig, "rounds")
DropFlags = Annotated[str, typer.Option(help=f"Comma-separated quality flags that leave a row out ({', '.join(FLAGS)}).")]
KeepFlagged = Annotated[bool, typer.Option("--keep-flagged", help="Keep flagged rows (they keep their flags).")]


def _version(value: bool) -> None:
    if value:
        from cai import __version__

        out.print(f"cai {__version__}")
        raise typer.Exit()


GLOBAL_FLAGS = ("--debug", "--no-debug", "--quiet", "-q")


def global_flags_first(argv: list[str]) -> list[str]:
    """--debug and --quiet may stand anywhere on the line (`cai generate … --quiet`): they are the
    root's options, so they are moved before the command name (never past a `--`)."""
    end = argv.index("--") if "--" in argv else len(argv)
    moved = [a for a in argv[:end] if a in GLOBAL_FLAGS]
    return moved + [a for a in argv[:end] if a not in GLOBAL_FLAGS] + argv[end:]


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option(help="Show tracebacks, engine logs and vLLM's progress bars.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display (for scripts).")] = False,
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_version, help="Print cai's version and exit.")] = False,
):
    flags["debug"] = debug
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


def summarize(reports: list[jobs.JobReport], max_error_rate: float = 1.0) -> None:
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
            str(stats.completion_tokens) if stats and stats.requests else "-",
            f"{stats.tokens_per_second:.0f}" if stats and stats.requests else "-",
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


def exit_with_problems(e: InvalidFile, path: Path) -> None:
    """Every problem of a file, one a line, then exit 1."""
    for problem in e.problems:
        err.print(str(problem), markup=False, highlight=False)
    err.print(f"[red]{len(e.problems)} problem(s) in {path}[/red]")
    raise typer.Exit(1)


def run_stage(run: RunDir, stage, executor: ExecutorConfig, chunk_size: int, force: bool) -> jobs.JobReport:
    if flags["debug"]:
        stage.engine.vllm.show_progress = True
    return jobs.execute(run, stage, executor.make(), chunk_size, force)


def from_first_row(path: Path, record_type, engine: EngineConfig, style: Optional[Style]) -> tuple[EngineConfig, Style]:
    """Model and style default to those that wrote the earlier stage's rows."""
    try:
        first = first_record(path, record_type)
    except ValueError:
        first = None
    if engine.model is None:
        engine.model = first.provenance.model if first else DEFAULT_MODEL
    return engine, style or (Style(first.provenance.style) if first else Style.chat)


def label_config(judge, style, principles_per_pair, cot, no_swap, cot_min, cot_max, seed,
                  drop_flags: str = DROP_FLAGS, keep_flagged: bool = False) -> LabelConfig:
    return LabelConfig(judge, style, principles_per_pair, not no_swap, cot, (cot_min, cot_max), seed=seed,
                       drop_flags=parse_flags(drop_flags), keep_flagged=keep_flagged)


def child_flags() -> list[str]:
    """This command's --debug and --quiet, for the cai commands it starts."""
    return (["--debug"] if flags["debug"] else []) + ([] if progress_settings["enabled"] else ["--quiet"])
