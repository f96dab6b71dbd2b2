"""Calibrated soft labels: the judge's probabilities mapped so that 0.8 means right 8 times in 10.

A calibration maps each judgement's p_first (the judge's probability for the answer it saw first,
after any chain-of-thought clamp) through the logit:

- `temperature`: p' = sigmoid(logit(p) / T), one parameter; T > 1 softens an over-confident judge.
  It is symmetric: the answer it favours stays favoured.
- `platt`: p' = sigmoid(a · logit(p) + b), Platt scaling; the intercept b also corrects a bias
  toward the answer shown first, so it can turn a verdict of a judge asked in one order only.

The debiased label is then the mean over the pair's judgements, as without calibration
(`judge.p_x_better`). The parameters are fitted by maximum likelihood of the human's choices on
pairs that people labelled (`cai eval judge --fit-calibration`); K-fold cross-validation measures
the expected calibration error (ECE) before and after on held-out folds, then the parameters are
fitted on every pair and written to a file that `cai label --calibration` applies.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from cai.core.errors import CaiError
from cai.core.records import Judgement
from cai.core.run import atomic_write
from cai.io.inputs import sha256_of
from cai.metrics.judge import calibration as reliability
from cai.metrics.judge import correct
from cai.stages.judge import margin, p_x_better

METHODS = ("temperature", "platt")
_EPS = 1e-6  # probabilities are kept in [EPS, 1 - EPS] so that every logit is finite


@dataclass(frozen=True)
class Calibration:
    method: str
    parameters: dict  # temperature: {"temperature": T}; platt: {"a": a, "b": b}

    def __call__(self, p: float) -> float:
        """One judgement's p_first, calibrated."""
        x = margin(p)  # the logit, p kept within 1e-6 of 0 and 1
        z = x / self.parameters["temperature"] if self.method == "temperature" else self.parameters["a"] * x + self.parameters["b"]
        return 0.5 * (1 + math.tanh(z / 2))  # the sigmoid, without overflow


def _arrays(judged: list[list[Judgement]], bounds: tuple[float, float] | None):
    """Every judgement's logit, whether it shows x first, and the pair it belongs to."""
    from scipy.special import logit

    lo, hi = bounds or (0.0, 1.0)
    p = np.clip([min(max(j.p_first, lo), hi) for js in judged for j in js], _EPS, 1 - _EPS)
    x_first = np.array([j.order == "AB" for js in judged for j in js])
    pair = np.repeat(np.arange(len(judged)), [len(js) for js in judged])
    return logit(p), x_first, pair


def fit(judged: list[list[Judgement]], method: str, bounds: tuple[float, float] | None = None) -> Calibration:
    """The parameters that maximise the likelihood of the human's choices (x, in every pair)."""
    from scipy.optimize import minimize
    from scipy.special import expit

    if method not in METHODS:
        raise CaiError(f"--calibration-method must be one of {', '.join(METHODS)}, not '{method}'")
    x, x_first, pair = _arrays(judged, bounds)
    counts = np.bincount(pair, minlength=len(judged))

    def calibrated(theta) -> np.ndarray:
        p = expit(x / math.exp(theta[0])) if method == "temperature" else expit(theta[0] * x + theta[1])
        return np.where(x_first, p, 1 - p)

    def loss(theta) -> float:
        p_x = np.bincount(pair, weights=calibrated(theta), minlength=len(judged)) / counts
        return -float(np.sum(np.log(np.clip(p_x, _EPS, 1))))

    start = [0.0] if method == "temperature" else [1.0, 0.0]
    theta = minimize(loss, start, method="L-BFGS-B").x
    if method == "temperature":
        return Calibration(method, {"temperature": round(math.exp(theta[0]), 6)})
    return Calibration(method, {"a": round(float(theta[0]), 6), "b": round(float(theta[1]), 6)})


def _log_loss(p_human: list[float]) -> float:
    return round(-float(np.mean(np.log(np.clip(p_human, _EPS, 1)))), 4)


def _scores(p_human: list[float]) -> dict:
    return {"ece": round(reliability(p_human)[1], 4), "log_loss": _log_loss(p_human),
            "accuracy": round(float(np.mean([correct(p) for p in p_human])), 4)}


def fit_calibration(judged: list[list[Judgement]], method: str, folds: int = 5, seed: int = 0,
                    bounds: tuple[float, float] | None = None) -> dict:
    """Cross-validated calibration: each fold's pairs calibrated by parameters fitted on the other
    folds; ECE (and log loss, accuracy) of the raw and the held-out calibrated labels; then the
    parameters fitted on every pair, the ones to apply."""
    from sklearn.model_selection import KFold

    if folds < 2:
        raise CaiError("--folds must be at least 2")
    if len(judged) < folds:
        raise CaiError(f"calibration needs at least as many judged pairs as folds ({folds}); there are {len(judged)}")
    before = [p_x_better(js, bounds) for js in judged]
    after = list(before)
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(np.arange(len(judged))):
        held_in = fit([judged[i] for i in train], method, bounds)
        for i in test:
            after[i] = p_x_better(judged[i], bounds, held_in)
    final = fit(judged, method, bounds)
    raw, cal = _scores(before), _scores(after)
    # how far apart the calibrated labels lie: a judge without signal is calibrated to 0.5 everywhere
    applied = [p_x_better(js, bounds, final) for js in judged]
    return {"method": final.method, "parameters": final.parameters, "folds": folds, "seed": seed, "n": len(judged),
            "ece_before": raw["ece"], "ece_after": cal["ece"], "log_loss_before": raw["log_loss"],
            "log_loss_after": cal["log_loss"], "accuracy_before": raw["accuracy"], "accuracy_after": cal["accuracy"],
            "p_range_after": [round(min(applied), 4), round(max(applied), 4)]}


def write_calibration(path: Path, fitted: dict) -> None:
    """The calibration file: YAML for a .yaml / .yml name, JSON otherwise."""
    if path.suffix in (".yaml", ".yml"):
        atomic_write(path, lambda f: yaml.safe_dump(fitted, f, sort_keys=False))
    else:
        atomic_write(path, lambda f: json.dump(fitted, f, indent=2))


def load_calibration(path: Path) -> tuple[Calibration, str, dict]:
    """A calibration file (`cai eval judge --fit-calibration`), its sha256 and its whole content."""
    if not path.is_file():
        raise CaiError(f"{path}: no such calibration file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise CaiError(f"{path}: not a JSON or YAML calibration file ({type(e).__name__})") from None
    method = data.get("method") if isinstance(data, dict) else None
    params = data.get("parameters") if isinstance(data, dict) else None
    needed = {"temperature": ("temperature",), "platt": ("a", "b")}.get(method)
    if needed is None or not isinstance(params, dict) or not all(
            isinstance(params.get(k), (int, float)) and not isinstance(params.get(k), bool) for k in needed):
        raise CaiError(f"{path}: a calibration file needs `method` ({' or '.join(METHODS)}) and numeric "
                       "`parameters` (temperature: temperature; platt: a and b), as `cai eval judge --fit-calibration` writes")
    if method == "temperature" and not params["temperature"] > 0:
        raise CaiError(f"{path}: the temperature must be above 0")
    return Calibration(method, {k: float(params[k]) for k in needed}), sha256_of(path), data
