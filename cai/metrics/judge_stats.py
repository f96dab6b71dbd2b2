"""The judge against people beyond one accuracy: its interval, agreement beyond chance, each
principle on its own, length bias and cost.

The rows are `cai eval judge`'s per-pair results (judgements.jsonl). x, the pair's first answer, is
always the human's choice, so `p_human` is the judge's probability for it and a pair is right when
it is above 0.5 (half right at exactly 0.5, as `judge_eval.correct` counts it).

Cohen's kappa needs two labels that both vary: with x always the human's choice the human's label
would be constant and kappa 0 whatever the judge did. So each pair is seen in an orientation drawn
from the seed and its id (x as "A" or as "B", a fair coin): the human's labels are then A or B at
random, the judge's are A, B or tie, and kappa is their agreement beyond what the two label shares
would give by chance.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from cai.constitution.principles import rng_for
from cai.core.records import Judgement
from cai.engine.engine import EngineStats
from cai.metrics.judge import correct
from cai.stages.judge import p_x_better

RESAMPLES = 2000  # bootstrap resamples of each interval
LENGTH_UNIT = 100  # the slope of p on the length difference is per this many characters


def _round(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def bootstrap_ci(values: list[float], seed: int, level: float = 0.95) -> list[float] | None:
    """The percentile bootstrap interval of the mean of `values` (RESAMPLES resamples drawn with
    `seed`, so the same values and seed give the same interval); None with fewer than 2 values."""
    from scipy.stats import bootstrap

    if len(values) < 2:
        return None
    result = bootstrap((np.asarray(values, dtype=float),), np.mean, n_resamples=RESAMPLES,
                                   confidence_level=level, method="percentile", rng=np.random.default_rng(seed))
    return [_round(result.confidence_interval.low), _round(result.confidence_interval.high)]


def kappa(p_human: list[float], ids: list[str], seed: int) -> float | None:
    """Cohen's kappa of the judge's choice against the human's, each pair in its seeded orientation."""
    from sklearn.metrics import cohen_kappa_score

    human, judge = [], []
    for p, pair_id in zip(p_human, ids):
        x = "A" if rng_for(seed, pair_id, "kappa").random() < 0.5 else "B"
        y = "B" if x == "A" else "A"
        human.append(x)
        judge.append("tie" if p == 0.5 else x if p > 0.5 else y)
    if len(set(human) | set(judge)) < 2:
        return None
    return _round(cohen_kappa_score(human, judge))


def per_principle(judged: list[list[Judgement]], seed: int, bounds: tuple[float, float] | None = None) -> dict:
    """principle id -> accuracy, its interval and the number of pairs it judged (its own debiased
    verdict on each pair, from its judgements alone)."""
    hits = defaultdict(list)
    for judgements in judged:
        by_principle = defaultdict(list)
        for j in judgements:
            by_principle[j.principle_id].append(j)
        for principle, js in by_principle.items():
            hits[principle].append(correct(p_x_better(js, bounds)))
    return {principle: {"accuracy": _round(float(np.mean(h))), "ci95": bootstrap_ci(h, seed), "n": len(h)}
            for principle, h in sorted(hits.items())}


def length_bias(p_human: list[float], lengths: list[tuple[int, int] | None]) -> dict:
    """How often the judge prefers the longer answer, how often people do (pairs of unequal length;
    for the judge, those it did not call a tie), and the least-squares slope of the judge's p for an
    answer on how much longer it is (per LENGTH_UNIT characters): 0 for a judge blind to length."""
    from scipy.stats import linregress

    known = [(p, xy[0] - xy[1]) for p, xy in zip(p_human, lengths) if xy is not None]
    unequal = [(p, d) for p, d in known if d != 0]
    judged = [(p, d) for p, d in unequal if p != 0.5]
    diffs = [d for _, d in known]
    slope = (linregress([d / LENGTH_UNIT for d in diffs], [p for p, _ in known]).slope
             if len(set(diffs)) > 1 else None)
    return {
        "judge_prefers_longer": _round(np.mean([(p > 0.5) == (d > 0) for p, d in judged])) if judged else None,
        "humans_prefer_longer": _round(np.mean([d > 0 for _, d in unequal])) if unequal else None,
        "slope": _round(slope),
        "slope_per_chars": LENGTH_UNIT,
        "n": len(known),
    }


def cost(pairs: int, judgements: int, stats: EngineStats | None, seconds: float) -> dict:
    """What judging took, and per 1,000 pairs: judgements, prompt tokens and seconds (the stage's
    compute time; requests answered from the cache cost no tokens and count in `cached`)."""
    prompt_tokens = stats.prompt_tokens if stats else 0
    scale = 1000 / pairs if pairs else None

    def per_1000(x: float) -> float | None:
        return round(x * scale, 1) if scale else None

    return {"pairs": pairs, "judgements": judgements, "prompt_tokens": prompt_tokens, "seconds": round(seconds, 1),
            "cached": stats.cached if stats else 0,
            "per_1000_pairs": {"judgements": per_1000(judgements), "prompt_tokens": per_1000(prompt_tokens),
                               "seconds": per_1000(seconds)}}


def analyse(rows: list[dict], judged: list[list[Judgement]], seed: int,
            bounds: tuple[float, float] | None = None) -> dict:
    """The summary's fields beyond `judge_eval.summarize`: accuracy_ci95, kappa, per_principle and
    length_bias. `rows` are judgements.jsonl's (id, optional chars), `judged` their judgements."""
    p_human = [p_x_better(js, bounds) for js in judged]
    lengths = [tuple(r["chars"]) if isinstance(r.get("chars"), list) else None for r in rows]
    return {
        "accuracy_ci95": bootstrap_ci([correct(p) for p in p_human], seed),
        "kappa": kappa(p_human, [str(r.get("id")) for r in rows], seed),
        "per_principle": per_principle(judged, seed, bounds),
        "length_bias": length_bias(p_human, lengths),
    }
