"""Rule weights fitted to people: which rules, and how much, explain the answers humans prefer.

As OpenAI's rule-based rewards fit their weights on a small human-labelled gold set, `cai fit rules`
fits a logistic model of the human's choice on the difference of per-rule scores:

    P(people prefer the chosen answer) = sigmoid(Σ_k w_k · (f_k(chosen) − f_k(rejected)))

with f_k(answer) = logit(p_follows_k), the log-odds that the answer follows rule k. The per-rule
scores of the gold pairs come from the AI judge: each pair's chosen and rejected answers are judged
against every rule of the constitution by the `cai rules` machinery (both orders, debiased), as a
resumable stage whose rows (rule_scores.jsonl, response_index 0 the chosen answer, 1 the rejected)
stay in the run folder. The same log-odds are what a rule model (`cai train rules`, trained on the
judge's p_follows) gives during RL, so `cai train ppo --rule-weights` adds Σ_k w_k · log-odds_k to
the reward: the fitted weights are on the scale of the human preference's logit.

The fit is L2-penalised (scikit-learn's LogisticRegression, no intercept: the pair's order carries
no information, so each pair enters in both orientations) and each weight's 95% interval is the
percentile interval over bootstrap resamples of the pairs.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from cai.constitution.schema import LoadedConstitution
from cai.core.errors import CaiError
from cai.core.records import RuleScoreRecord
from cai.core.run import RunDir, atomic_write, read_jsonl
from cai.core.sources import PairSource
from cai.core.stage import Stage
from cai.engine.config import EngineConfig
from cai.io.inputs import sha256_of
from cai.stages.judge import margin
from cai.stages.rules import RulesConfig
from cai.workflows.rules import rules_stage


def gold_stage(run: RunDir, gold: Path, constitution: LoadedConstitution, config: RulesConfig, engine: EngineConfig,
               limit: int | None = None, chosen_field: str = "chosen", rejected_field: str = "rejected") -> Stage:
    """`cai rules` on both answers of each gold pair: RUN/rule_scores.jsonl."""
    stage = rules_stage(run, "samples", gold, constitution, config, engine)
    return replace(stage, source=PairSource(gold, "rules", limit, chosen_field, rejected_field),
                   settings={**stage.settings, "input": "gold", "chosen_field": chosen_field,
                             "rejected_field": rejected_field})


def pair_features(scores: list[RuleScoreRecord], rule_ids: list[str]) -> tuple[list[str], np.ndarray]:
    """Each pair judged on both answers: its id and f(chosen) − f(rejected) per rule, f = logit."""
    answers = defaultdict(dict)
    for row in scores:
        answers[row.id][row.response_index] = row.scores
    ids = [i for i, sides in answers.items() if {0, 1} <= sides.keys()]
    features = [[margin(answers[i][0][k]) - margin(answers[i][1][k]) for k in rule_ids] for i in ids]
    return ids, np.array(features, dtype=float).reshape(len(ids), len(rule_ids))


def _fit(features: np.ndarray, l2: float) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    both = np.vstack([features, -features])  # each pair in both orientations: chosen first, then second
    labels = np.r_[np.ones(len(features)), np.zeros(len(features))]
    return LogisticRegression(C=1.0 / l2, fit_intercept=False).fit(both, labels).coef_[0]


def fit_weights(features: np.ndarray, l2: float = 1.0, resamples: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The weights, and their 95% bootstrap intervals (rows: low, high)."""
    if len(features) < 2:
        raise CaiError(f"fitting rule weights needs at least 2 gold pairs judged on both answers; there are {len(features)}")
    weights = _fit(features, l2)
    rng = np.random.default_rng(seed)
    draws = np.array([_fit(features[rng.integers(0, len(features), len(features))], l2) for _ in range(resamples)])
    return weights, np.percentile(draws, [2.5, 97.5], axis=0)


def _accuracy(features: np.ndarray, weights: np.ndarray) -> float:
    """Share of pairs where the weighted score difference favours the human's choice (ties half)."""
    z = features @ weights
    return round(float(np.mean(np.where(z > 0, 1.0, np.where(z == 0, 0.5, 0.0)))), 4)


def fit_rules(run: RunDir, constitution: LoadedConstitution, gold: Path, judge_model: str, l2: float = 1.0,
              resamples: int = 200, seed: int = 0) -> dict:
    """The weights file's content, from the gold pairs' rule scores in the run folder."""
    rules = constitution.constitution.rules
    scores = read_jsonl(run.require("rule_scores.jsonl", "cai fit rules"), RuleScoreRecord)
    ids, features = pair_features(scores, [r.id for r in rules])
    weights, (low, high) = fit_weights(features, l2, resamples, seed)
    prior = np.array([r.weight for r in rules])
    return {
        "rules": [{"id": r.id, "rule": r.rule, "weight": round(float(w), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)]}
                  for r, w, lo, hi in zip(rules, weights, low, high)],
        "pairs": len(ids), "l2": l2, "bootstrap": resamples, "seed": seed,
        "accuracy": _accuracy(features, weights),
        "accuracy_constitution_weights": _accuracy(features, prior),
        "features": "logit(p_follows) of the chosen answer minus that of the rejected, per rule (the AI judge's)",
        "judge_model": judge_model, "constitution_sha256": constitution.sha256,
        "gold": str(gold), "gold_sha256": sha256_of(gold),
    }


def write_weights(path: Path, fitted: dict) -> None:
    """The weights file: YAML for a .yaml / .yml name, JSON otherwise."""
    if path.suffix in (".yaml", ".yml"):
        atomic_write(path, lambda f: yaml.safe_dump(fitted, f, sort_keys=False, allow_unicode=True))
    else:
        atomic_write(path, lambda f: json.dump(fitted, f, indent=2, ensure_ascii=False))


def load_weights(path: Path) -> dict[str, float]:
    """rule id -> weight, from a weights file (`cai fit rules`)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))  # JSON is YAML too
    except OSError:
        raise CaiError(f"{path}: no such weights file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise CaiError(f"{path}: not a JSON or YAML weights file ({type(e).__name__})") from None
    rules = data.get("rules") if isinstance(data, dict) else None
    if not isinstance(rules, list) or not all(
            isinstance(r, dict) and isinstance(r.get("id"), str) and isinstance(r.get("weight"), (int, float))
            for r in rules):
        raise CaiError(f"{path}: a weights file needs `rules`, a list of {{id, weight}}, as `cai fit rules` writes")
    return {r["id"]: float(r["weight"]) for r in rules}
