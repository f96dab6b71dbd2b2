"""The report's figures: matplotlib Figures drawn on the Agg canvas (no display, no pyplot state),
each returned as a PNG `data:` URI that the page embeds, so it opens with no network and no files
beside it.

Labels come from the data (principle ids, policy names): mathtext is off, so that a `$` in them
is drawn as text, and long labels are shortened.
"""

from __future__ import annotations

import base64
import functools
import io
from collections import Counter

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

STYLE = {"text.parse_math": False, "font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
         "axes.grid": True, "grid.alpha": 0.3}

BLUE, ORANGE, GREY = "#3b6ea8", "#d9822b", "#888888"


def short(label: str, width: int = 40) -> str:
    label = " ".join(str(label).split())
    return label if len(label) <= width else label[: width - 1] + "…"


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    FigureCanvasAgg(fig)  # attaches itself to the figure: savefig draws with Agg
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def figure(draw):
    """A plot function drawn in the report's style (without touching matplotlib's global settings)."""

    @functools.wraps(draw)
    def styled(*args, **kwargs) -> str:
        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)

    return styled


@figure
def counts_bar(counts: Counter, title: str, xlabel: str) -> str:
    """Horizontal bars, most frequent on top."""
    items = counts.most_common()[::-1]
    fig = Figure(figsize=(5.4, 0.8 + 0.28 * len(items)))
    ax = fig.add_subplot()
    ax.barh(range(len(items)), [v for _, v in items], color=BLUE)
    ax.set_yticks(range(len(items)), [short(k) for k, _ in items])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(title=title, xlabel=xlabel)
    return _png(fig)


@figure
def lengths_by_round(rounds: list[list[int]]) -> str:
    """One box per round of answer lengths; round 0 is the initial answer."""
    fig = Figure(figsize=(5.4, 3.4))
    ax = fig.add_subplot()
    ax.boxplot(rounds, positions=range(len(rounds)), showmeans=True)
    ax.set_xticks(range(len(rounds)), [f"{k}\n(n={len(v)})" for k, v in enumerate(rounds)])
    ax.set(title="Answer length by round (0 = initial answer)", xlabel="round", ylabel="words")
    return _png(fig)


@figure
def histogram(values: list[float], title: str, xlabel: str, value_range: tuple[float, float]) -> str:
    fig = Figure(figsize=(5.4, 3.4))
    ax = fig.add_subplot()
    ax.hist(values, bins=20, range=value_range, color=BLUE, edgecolor="white")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(title=title, xlabel=xlabel, ylabel="pairs")
    return _png(fig)


@figure
def position_scatter(points: list[tuple[float, float]]) -> str:
    """p_first in order AB against 1 - p_first in order BA; on the diagonal, order does not matter."""
    fig = Figure(figsize=(4.6, 4.6))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color=GREY, linestyle="--", linewidth=1, label="no position bias")
    ax.scatter([x for x, _ in points], [y for _, y in points], s=10, alpha=0.5, color=BLUE)
    ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal", title=f"Position bias ({len(points)} judgements in both orders)",
           xlabel="p_first, order AB  (P x better, x shown first)", ylabel="1 − p_first, order BA  (P x better, x second)")
    ax.legend(loc="upper left")
    return _png(fig)


@figure
def reliability(bins: list[dict], ece: float) -> str:
    """Accuracy against confidence per bin, with the count of each bin below."""
    fig = Figure(figsize=(4.8, 5.0))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    width = bins[0]["high"] - bins[0]["low"] if bins else 0.05
    centres = [(b["low"] + b["high"]) / 2 for b in bins]
    top.plot([0.5, 1], [0.5, 1], color=GREY, linestyle="--", linewidth=1, label="calibrated")
    top.bar(centres, [b["accuracy"] for b in bins], width=width * 0.9, color=BLUE, alpha=0.8, label="accuracy")
    top.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color=ORANGE,
             label="at mean confidence")
    top.set(xlim=(0.5, 1), ylim=(0, 1.05), ylabel="accuracy (judge agrees with humans)",
            title=f"Reliability diagram (ECE {ece:.3f})")
    top.legend(loc="upper left", fontsize=7, framealpha=0.9)
    bottom.bar(centres, [b["n"] for b in bins], width=width * 0.9, color=GREY)
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.set(xlabel="judge's confidence  max(p, 1 − p)", ylabel="pairs")
    return _png(fig)


@figure
def elo_bars(tags: dict[str, dict]) -> str:
    """Each tag's Elo per policy, with its 95% interval as error bars."""
    fig = Figure(figsize=(3.4 * len(tags) + 0.6, 3.4))
    axes = fig.subplots(1, len(tags), squeeze=False)[0]
    for ax, (tag, result) in zip(axes, tags.items()):
        policies = list(result.get("elo", {}))
        elo = [result["elo"][p] for p in policies]
        ci = [result.get("ci95", {}).get(p, [e, e]) for p, e in zip(policies, elo)]
        errors = [[e - lo for e, (lo, _) in zip(elo, ci)], [hi - e for e, (_, hi) in zip(elo, ci)]]
        ax.errorbar(range(len(policies)), elo, yerr=errors, fmt="o", capsize=4, color=BLUE)
        ax.set_xticks(range(len(policies)), [short(p, 16) for p in policies], rotation=20)
        ax.set(title=f"{short(tag, 24)} Elo", ylabel="Elo (first policy = 0)")
    return _png(fig)


@figure
def elo_by_iteration(iterations: list[dict]) -> str:
    """Iterated RL-CAI: each tag's Elo of each policy against the iteration, with 95% intervals."""
    tags = list(dict.fromkeys(tag for it in iterations for tag in it["tags"]))
    fig = Figure(figsize=(3.6 * len(tags) + 0.6, 3.4), layout="constrained")
    for ax, tag in zip(fig.subplots(1, len(tags), squeeze=False)[0], tags):
        policies = list(dict.fromkeys(p for it in iterations for p in it["tags"].get(tag, {}).get("elo", {})))
        for policy in policies:
            points = [(it["iteration"], it["tags"][tag]["elo"][policy], it["tags"][tag]["ci95"][policy])
                      for it in iterations if policy in it["tags"].get(tag, {}).get("elo", {})]
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            errors = [[y - lo for _, y, (lo, _) in points], [hi - y for _, y, (_, hi) in points]]
            ax.errorbar(xs, ys, yerr=errors, fmt="o-", capsize=3, label=short(policy, 16))
        ax.set(title=f"{short(tag, 24)} Elo by iteration", xlabel="iteration", ylabel="Elo (first policy = 0)")
        ax.set_xticks(sorted({it["iteration"] for it in iterations}))
        ax.legend(fontsize="small")
    return _png(fig)


@figure
def elo_scatter(harmless: dict, helpful: dict) -> str:
    """Harmlessness Elo against helpfulness Elo, one point per policy, as the paper draws it."""
    fig = Figure(figsize=(4.8, 4.4))
    ax = fig.add_subplot()
    for policy in [p for p in harmless.get("elo", {}) if p in helpful.get("elo", {})]:
        x, y = helpful["elo"][policy], harmless["elo"][policy]
        (xlo, xhi), (ylo, yhi) = helpful.get("ci95", {}).get(policy, [x, x]), harmless.get("ci95", {}).get(policy, [y, y])
        ax.errorbar([x], [y], xerr=[[x - xlo], [xhi - x]], yerr=[[y - ylo], [yhi - y]], fmt="o", capsize=3)
        ax.annotate(short(policy, 20), (x, y), textcoords="offset points", xytext=(5, 5))
    ax.set(title="Harmlessness against helpfulness", xlabel="helpful Elo", ylabel="harmless Elo")
    return _png(fig)


@figure
def curves(groups: dict[str, dict[str, tuple[list[float], list[float]]]]) -> str:
    """One panel per curve (loss, reward, KL, accuracy), one line per logged key."""
    fig = Figure(figsize=(3.0 * len(groups) + 0.4, 2.8))
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, (name, series) in zip(axes, groups.items()):
        for key, (steps, values) in series.items():
            ax.plot(steps, values, marker="." if len(steps) < 30 else None, label=short(key, 28))
        ax.set(title=name, xlabel="step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
        ax.legend(fontsize=7)
    return _png(fig)
