"""The numbers the report shows, computed from a run's rows: no plotting and no HTML here."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from itertools import combinations

from cai.core.records import PreferenceRecord, RevisionRecord
from cai.metrics.judge import summarize


def words(text: str) -> int:
    return len(text.split())


def principle_draws(revisions: list[RevisionRecord]) -> Counter:
    """How often each critique principle was drawn, over every round of every example."""
    return Counter(step.principle_id for r in revisions for step in r.steps)


def lengths_by_round(revisions: list[RevisionRecord]) -> list[list[int]]:
    """Answer lengths in words: [round 0 (the initial answers), round 1's revisions, ...]."""
    rounds: list[list[int]] = [[words(r.initial_response) for r in revisions]]
    for r in revisions:
        for k, step in enumerate(r.steps, 1):
            if k == len(rounds):
                rounds.append([])
            rounds[k].append(words(step.revision))
    return rounds


def _orders_by_principle(record: PreferenceRecord) -> dict[str, dict[str, float]]:
    """p_first per principle and order: {principle_id: {"AB": p, "BA": p}}."""
    orders: dict[str, dict[str, float]] = defaultdict(dict)
    for j in record.judgements:
        orders[j.principle_id][j.order] = j.p_first
    return orders


def position_points(preferences: list[PreferenceRecord]) -> list[tuple[float, float]]:
    """One point per pair and principle asked in both orders: (p_first in AB, 1 - p_first in BA).
    Both estimate P(x is better); a judge blind to position puts every point on the diagonal."""
    return [
        (o["AB"], 1.0 - o["BA"])
        for r in preferences
        for o in _orders_by_principle(r).values()
        if {"AB", "BA"} <= o.keys()
    ]


def position_summary(preferences: list[PreferenceRecord]) -> dict:
    """The labels' position consistency and first-position rate, as `cai eval judge` defines them."""
    summary = summarize([r.judgements for r in preferences])
    return {k: summary[k] for k in ("position_consistency", "first_position_rate", "judgements")}


def ensemble_agreement(preferences: list[PreferenceRecord]) -> dict | None:
    """How far the principles of an ensemble agree, over the pairs judged under two or more.

    Each principle's verdict is its own debiased probability that x is better (the mean over its
    orders of p_first in AB and 1 - p_first in BA); it picks x above 0.5 and y below. Reported:
    `all_agree`, the share of pairs whose principles all pick the same answer; `pairwise`, the share
    of two-principle comparisons (every two principles of a pair) that pick the same answer; and
    `with_ensemble` per principle, the share of its verdicts that pick the pair's chosen answer, and
    `verdicts`, how many it gave. None when no pair has two principles."""
    all_agree, pairwise, with_ensemble = [], [], defaultdict(list)
    for r in preferences:
        orders = _orders_by_principle(r)
        if len(orders) < 2:
            continue
        verdicts = {
            pid: sum(p if order == "AB" else 1.0 - p for order, p in o.items()) / len(o) for pid, o in orders.items()
        }
        sides = {pid: (v > 0.5) - (v < 0.5) for pid, v in verdicts.items()}  # +1 x, -1 y, 0 no pick
        all_agree.append(len(set(sides.values())) == 1 and 0 not in sides.values())
        pairwise += [a == b != 0 for a, b in combinations(sides.values(), 2)]
        chosen_side = 1 if r.pair[0] < r.pair[1] else -1  # x is the answer of the lower index
        for pid, side in sides.items():
            with_ensemble[pid].append(side == chosen_side)
    if not all_agree:
        return None
    return {
        "pairs": len(all_agree),
        "all_agree": sum(all_agree) / len(all_agree),
        "pairwise": sum(pairwise) / len(pairwise),
        "with_ensemble": {pid: sum(v) / len(v) for pid, v in sorted(with_ensemble.items())},
        "verdicts": {pid: len(v) for pid, v in sorted(with_ensemble.items())},
    }


def drop_counts(manifest: dict) -> list[tuple[str, str, int]]:
    """(stage, what, count) for every count of rows left out or flagged that the manifest records:
    keys such as `identical_pairs_dropped`, `stopped_early`, or per-flag dicts like `flagged`, in
    a stage's entry or in its chunk `counters` (where label counts `flagged_pairs_dropped`)."""
    found = []
    pattern = re.compile(r"dropped|flag|left_out|stopped|skipped")
    for stage, entry in manifest.get("stages", {}).items():
        counters = entry.get("counters") if isinstance(entry.get("counters"), dict) else {}
        for key, value in [*entry.items(), *counters.items()]:
            if not pattern.search(key):
                continue
            if isinstance(value, bool):
                continue
            if isinstance(value, int):
                found.append((stage, key, value))
            elif isinstance(value, dict):
                found += [(stage, f"{key}: {k}", v) for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool)]
    return found


def error_counts(errors: list[dict], top: int = 5) -> list[dict]:
    """Per stage of `errors.jsonl`: how many rows, and the most common reasons."""
    by_stage: dict[str, Counter] = defaultdict(Counter)
    for e in errors:
        by_stage[str(e.get("stage"))][str(e.get("reason"))] += 1
    return [
        {"stage": stage, "count": sum(reasons.values()), "reasons": reasons.most_common(top)}
        for stage, reasons in by_stage.items()
    ]


# Trainer log keys by the curve they belong on; the first pattern that matches a key wins.
CURVES = {
    "accuracy": re.compile(r"accurac"),
    "KL": re.compile(r"(^|/)kl$"),
    "loss": re.compile(r"loss"),
    "reward": re.compile(r"reward|score|margin"),
}


def training_curves(log_history: list[dict]) -> dict[str, dict[str, tuple[list[float], list[float]]]]:
    """{curve: {log key: (steps, values)}} from a trainer's `state.log_history`. The closing entry
    (train_runtime, train_loss, ...) and spreads (`*_std`) are left out."""
    curves: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
    for entry in log_history:
        if not isinstance(entry, dict) or "train_runtime" in entry or "step" not in entry:
            continue
        for key, value in entry.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or "std" in key:
                continue
            curve = next((name for name, pattern in CURVES.items() if pattern.search(key)), None)
            if curve:
                steps, values = curves.setdefault(curve, {}).setdefault(key, ([], []))
                steps.append(entry["step"])
                values.append(value)
    return {name: curves[name] for name in CURVES if name in curves}
