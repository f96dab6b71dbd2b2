"""The page: each section's tables, figures and examples built from a run's sources, then rendered
with Jinja2 into one self-contained HTML file.

The template escapes every value (autoescape); the only markup built here is the word diff, which
escapes its text itself (cai.report.worddiff).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from statistics import mean, median

from jinja2 import Environment, StrictUndefined

from cai.core.errors import CaiError
from cai.core.run import atomic_write, now
from cai.metrics.judge import calibration
from cai.report import plots, stats
from cai.report.sources import Sources, collect, read_dicts, read_json
from cai.report.worddiff import word_diff


def write_report(run: Path, output: Path | None = None, include: Sequence[Path] = (), examples: int = 50) -> Path:
    """Write the report of the run folder `run` (and of the eval / model folders in `include`) to
    `output`, by default RUN/report.html; returns where it went."""
    run, include = Path(run), [Path(d) for d in include]
    for folder in (run, *include):
        if not folder.is_dir():
            raise CaiError(f"{folder}: no such folder")
    sources = collect(run, include)
    if sources.empty:
        raise CaiError(f"{run} holds no manifest, stage outputs, evals or trained models to report on")
    output = Path(output) if output else run / "report.html"
    html = render(sources, examples)
    atomic_write(output, lambda f: f.write(html))
    return output


def render(sources: Sources, examples: int) -> str:
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["show"] = show
    template = env.from_string(files("cai.report").joinpath("report.html.j2").read_text(encoding="utf-8"))
    return template.render(
        run=str(sources.run),
        written=now(),
        manifest=manifest_section(sources.manifest) + [trained_row(p, sources.run) for p in sources.trainings],
        sl=sl_section(sources, examples),
        rl=rl_section(sources),
        judge_evals=[judge_eval_section(d, sources.run) for d in sources.judge_evals],
        policy_evals=[s for s in (policy_eval_section(d, sources.run) for d in sources.policy_evals) if s],
        iterations=plots.elo_by_iteration(sources.iterations) if sources.iterations else None,
        trainings=[training_section(p, sources.run) for p in sources.trainings],
        quality=quality_section(sources),
    )


def show(value) -> str:
    """A value as a table cell shows it: — for nothing, 4 significant digits, thousands separated."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e15 else f"{value:.3e}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _flatten(entry: dict, prefix: str = "") -> list[tuple[str, object]]:
    rows = []
    for key, value in entry.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows += _flatten(value, name + ".")
        else:
            rows.append((name, value))
    return rows


def _label(folder: Path, run: Path) -> str:
    """A folder as the page names it: relative to the run folder when inside it."""
    try:
        return str(folder.resolve().relative_to(run.resolve())) or "."
    except ValueError:
        return str(folder)


def manifest_section(manifest: dict) -> list[dict]:
    stages = []
    for name, entry in manifest["stages"].items():
        engine = _dict(entry.get("engine"))
        stages.append({
            "stage": name,
            "status": entry.get("status"),
            "model": entry.get("model") or entry.get("judge_model"),
            "rows_in": entry.get("rows_in"),
            "rows_out": entry.get("rows_out"),
            "errors": entry.get("errors"),
            "completion_tokens": engine.get("completion_tokens"),
            "tokens_per_second": engine.get("tokens_per_second"),
            "seconds": entry.get("seconds"),
            "finished": entry.get("finished"),
            "details": _flatten(entry),
        })
    return stages


def trained_row(path: Path, run: Path) -> dict:
    """A trained model as a manifest row: trainings keep their record in OUT/cai_train.json, not in
    the run's manifest, so that `cai train` needs no run folder."""
    info = read_json(path) or {}
    return {
        "stage": f"train {info.get('job', '?')}: {_label(path.parent, run)}",
        "status": "done" if info.get("finished") else "started",
        "model": info.get("model"),
        "rows_in": None, "rows_out": None, "errors": None, "completion_tokens": None, "tokens_per_second": None,
        "seconds": info.get("seconds"),
        "finished": info.get("finished"),
        "details": _flatten({k: v for k, v in info.items() if k != "log_history"}),
    }


def _example(record) -> dict:
    diff, changed = word_diff(record.initial_response, record.final_response)
    return {
        "id": record.id,
        "prompt": [(m.role, m.content) for m in record.prompt],
        "initial": record.initial_response,
        "steps": record.steps,
        "diff": diff,
        "changed": changed,
        "stopped": record.stopped,
    }


def sl_section(sources: Sources, examples: int) -> dict | None:
    rows = sources.stages.get("critique")
    if rows is None:
        return None
    revisions = rows.records
    lengths = stats.lengths_by_round(revisions)
    draws = stats.principle_draws(revisions)
    return {
        "file": rows.path.name,
        "count": len(revisions),
        "unreadable": rows.unreadable,
        "stopped": Counter(r.stopped for r in revisions if r.stopped),
        "draws_plot": plots.counts_bar(draws, "Critique principles drawn", "rounds") if draws else None,
        "draws": draws.most_common(),
        "lengths_plot": plots.lengths_by_round(lengths) if revisions else None,
        "lengths": [(k, len(v), mean(v), median(v)) for k, v in enumerate(lengths) if v],
        "examples": [_example(r) for r in revisions[:examples]],
    }


def _pair_accounting(manifest: dict) -> list[tuple[str, object]]:
    label = manifest["stages"].get("label") or {}
    label = {**_dict(label.get("counters")), **label}  # the stage keeps its pair counts in `counters`
    export = manifest["stages"].get("export_prefs") or {}
    rows = [
        ("pairs of answers", label.get("pairs")),
        ("identical pairs dropped", label.get("identical_pairs_dropped")),
        *[(f"{what} ({stage})", n) for stage, what, n in stats.drop_counts(manifest)
          if stage in ("label", "export_prefs") and what != "identical_pairs_dropped"],
        ("judge errors", label.get("errors")),
        ("pairs labelled", label.get("rows_out")),
        (f"exported (p_chosen ≥ {show(export.get('min_confidence'))})", export.get("rows_out")),
    ]
    return [(what, n) for what, n in rows if n is not None]


def rl_section(sources: Sources) -> dict | None:
    rows = sources.stages.get("label")
    if rows is None:
        return None
    prefs = rows.records
    points = stats.position_points(prefs)
    return {
        "file": rows.path.name,
        "count": len(prefs),
        "unreadable": rows.unreadable,
        "p_chosen_plot": plots.histogram([r.p_chosen for r in prefs], "Judge's confidence in the chosen answer",
                                         "p_chosen", (0.5, 1.0)) if prefs else None,
        "position_plot": plots.position_scatter(points) if points else None,
        "position": stats.position_summary(prefs),
        "agreement": stats.ensemble_agreement(prefs),
        "accounting": _pair_accounting(sources.manifest),
    }


JUDGE_METRICS = ("n", "accuracy", "accuracy_ci95", "kappa", "position_consistency", "first_position_rate",
                 "mean_confidence", "ece", "judge_model", "principles_per_pair", "swap", "cot",
                 "identical_pairs_dropped", "errors")
LENGTH_BIAS = ("judge_prefers_longer", "humans_prefer_longer", "slope", "n")
CALIBRATION = ("method", "parameters", "folds", "ece_before", "ece_after", "log_loss_before", "log_loss_after",
               "p_range_after", "file")


def judge_eval_section(folder: Path, run: Path) -> dict:
    summary = read_json(folder / "summary.json") or {}
    p_human = [r["p_human_choice"] for r in read_dicts(folder / "judgements.jsonl")
               if isinstance(r.get("p_human_choice"), (int, float)) and 0 <= r["p_human_choice"] <= 1]
    bins, ece = calibration(p_human)
    principles = [(str(p), _dict(row).get("accuracy"), _dict(row).get("ci95"), _dict(row).get("n"))
                  for p, row in _dict(summary.get("per_principle")).items()]
    length, cost, fitted = (_dict(summary.get(k)) for k in ("length_bias", "cost", "calibration"))
    return {
        "name": _label(folder, run),
        "metrics": [(k, summary.get(k)) for k in JUDGE_METRICS],
        "plot": plots.reliability(bins, ece) if p_human else None,
        "bins": bins,
        "principles": sorted(principles, key=lambda row: row[1] if _number(row[1]) else -1),
        "length_bias": [(k, length.get(k)) for k in LENGTH_BIAS] if length else [],
        "cost": [(k, v) for k, v in _dict(cost.get("per_1000_pairs")).items()],
        "calibration": [(k, fitted.get(k)) for k in CALIBRATION] if fitted else [],
    }


def _tag_result(result) -> dict | None:
    """One tag of eval.json with only well-formed numbers kept (a missing interval is the point)."""
    elo = {str(p): x for p, x in _dict(_dict(result).get("elo")).items() if _number(x)}
    if not elo:
        return None
    ci, win = _dict(result.get("ci95")), _dict(result.get("win_rate"))
    intervals = {}
    for p, x in elo.items():
        interval = ci.get(p)
        well_formed = isinstance(interval, list) and len(interval) == 2 and all(map(_number, interval))
        intervals[p] = interval if well_formed else [x, x]
    win_rate = {p: {q: w if _number(w := _dict(win.get(p)).get(q)) else None for q in elo} for p in elo}
    return {"elo": elo, "ci95": intervals, "win_rate": win_rate, "comparisons": result.get("comparisons")}


def policy_eval_section(folder: Path, run: Path) -> dict | None:
    tags = {}
    for tag, result in _dict((read_json(folder / "eval.json") or {}).get("tags")).items():
        if (kept := _tag_result(result)) is not None:
            tags[str(tag)] = kept
    if not tags:
        return None
    both = "harmless" in tags and "helpful" in tags
    own = _dict((read_json(folder / "eval.json") or {}).get("self_preference"))
    return {
        "name": _label(folder, run),
        "tags": tags,
        "self_preference": [(str(p), _dict(s).get("share"), _dict(s).get("mean_p"), _dict(s).get("n")) for p, s in own.items()],
        "elo_plot": plots.elo_bars(tags),
        "scatter_plot": plots.elo_scatter(tags["harmless"], tags["helpful"]) if both else None,
    }


def training_section(path: Path, run: Path) -> dict:
    info = read_json(path) or {}
    log_history = info.get("log_history") if isinstance(info.get("log_history"), list) else []
    curves = stats.training_curves(log_history)
    name = _label(path.parent, run)
    metrics = _dict(info.get("metrics"))
    return {
        "name": name,
        "facts": [(k, info.get(k)) for k in ("job", "model", "data", "data_sha256", "seconds", "finished")],
        "metrics": sorted(metrics.items()),
        "plot": plots.curves(curves) if curves else None,
        "logged_steps": len([e for e in log_history if isinstance(e, dict) and "train_runtime" not in e]),
    }


def quality_section(sources: Sources) -> dict:
    return {
        "flags": [
            {"stage": stage, "file": rows.path.name, "rows": len(rows.records), "flagged": rows.flagged,
             "flags": rows.flags.most_common(), "unreadable": rows.unreadable}
            for stage, rows in sources.stages.items()
        ],
        "drops": stats.drop_counts(sources.manifest),
        "errors": stats.error_counts(sources.errors),
    }
