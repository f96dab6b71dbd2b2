"""What a reward is made of, for `cai train ppo --algo grpo|rloo` and `cai serve reward`.

The parts are a preference model, a rule model or the rules judged live, and the judge's own
reward (`score` or `pairwise`); the reward is their weighted sum. In training, TRL sums the parts
(`reward_weights`) and logs each under its name; the reward server sums them here and returns each
part beside the total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from cai.core.errors import CaiError
from cai.data import DEFAULT_CONSTITUTION
from cai.engine.config import EngineConfig
from cai.engine.models import DEFAULT_MODEL
from cai.rewards.judge import Judge, JudgeReward, RulesJudgeReward
from cai.stages.dialogue import Style


@dataclass
class JudgeSettings:
    """The judge's part in a reward: `reward` (score, pairwise or None) weighted by `weight`, and
    with `rules` the constitution's rules judged live (weighted by the rules' weight)."""

    engine: EngineConfig
    reward: str | None = None
    weight: float = 1.0
    rules: bool = False
    constitution: Path = DEFAULT_CONSTITUTION
    style: Style = Style.chat
    seed: int = 0
    rule_weights: Path | None = None  # the rules' weights fitted to people (cai fit rules), for the rules judged live
    judge: Judge | None = field(default=None, repr=False)

    def rewards(self, cache: Path | None, rules_weight: float = 1.0) -> list[tuple[object, float]]:
        """(reward function, weight) for each judged part; they share one judge engine."""
        self.judge = Judge(self.engine, cache)
        common = {"constitution": self.constitution, "style": self.style, "seed": self.seed}
        parts = []
        if self.rules:
            from cai.metrics.rule_weights import load_weights

            weights = load_weights(self.rule_weights) if self.rule_weights else None
            parts.append((RulesJudgeReward(self.judge, weights, **common), rules_weight))
        if self.reward:
            parts.append((JudgeReward(self.judge, self.reward, **common), self.weight))
        return parts

    def record(self) -> dict:
        """What cai_train.json keeps of the judge (no server URL), and its requests once it ran."""
        return {"engine": self.engine.record(), "reward": self.reward, "weight": self.weight,
                "rules": self.rules, "rule_weights": str(self.rule_weights) if self.rule_weights else None,
                "constitution": str(self.constitution), "style": self.style.value,
                "seed": self.seed, "requests": self.judge.stats() if self.judge else {}}


def judge_settings(engine: EngineConfig, reward: str | None, weight: float, rules: bool,
                   constitution: Path = DEFAULT_CONSTITUTION, style: Style = Style.chat, seed: int = 0,
                   rule_weights: Path | None = None) -> JudgeSettings | None:
    """The judge's part as the command line gives it: None without --judge-reward and --rules-judge;
    the judge is the default model unless --judge-model names another."""
    if reward is None and not rules:
        if engine.model is not None or engine.servers:
            raise CaiError("a judge was given but no part for it: add --judge-reward score|pairwise or --rules-judge")
        return None
    if engine.servers and engine.model is None:
        raise CaiError("with --judge-server, --judge-model names the served model")
    engine.model = engine.model or DEFAULT_MODEL
    return JudgeSettings(engine, reward, weight, rules, constitution, style, seed, rule_weights if rules else None)


def check_rules_part(rule_model: str | None, rules_judge: bool, rule_weights: Path | None) -> None:
    """The rules' part of a reward is a trained rule model or the rules judged live, not both; weights
    fitted to people weigh one of them."""
    if rule_model is not None and rules_judge:
        raise CaiError("give one of --rule-model (a trained rule model) and --rules-judge (the judge asks each rule)")
    if rule_weights is not None and rule_model is None and not rules_judge:
        raise CaiError("--rule-weights weighs the rules' scores: give --rule-model or --rules-judge too")


def rule_model_reward(rule_model: str, rule_weights: Path | None):
    """A rule model (`cai train rules`) as a reward, weighted by the constitution or by fitted weights."""
    from cai.metrics.rule_weights import load_weights
    from cai.train.rules import RuleReward

    return RuleReward(rule_model, load_weights(rule_weights) if rule_weights else None)


class PreferenceReward:
    """A preference model (`cai train pm`) as a reward function: its score of each conversation
    with the completion, the conversation rendered by its own chat template, as TRL scores it."""

    def __init__(self, path: str, batch_size: int = 8, max_length: int = 1024):
        import torch

        from cai.train.common import model_path
        from cai.train.preference import _reward_model

        self.__name__ = Path(path).name
        self.model, self.tokenizer = _reward_model(model_path(path))
        self.model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
        self.batch_size, self.max_length = batch_size, max_length

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        import torch

        texts = [self.tokenizer.apply_chat_template(p + c, tokenize=False) for p, c in zip(prompts, completions)]
        scores = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(texts[start : start + self.batch_size], return_tensors="pt", padding=True,
                                       truncation=True, max_length=self.max_length,
                                       add_special_tokens=False).to(self.model.device)
                scores += self.model(**batch).logits[:, 0].float().tolist()
        return scores


def weighted_sum(parts: list[tuple[object, float]], prompts: list[list[dict]], completions: list[list[dict]]) -> tuple[list[float], dict[str, list]]:
    """Each part's rewards, and their weighted sum per completion; a part that failed for a
    completion (None) is left out of its sum, as TRL leaves it out."""
    logs = {part.__name__: part(prompts, completions) for part, _ in parts}
    totals = []
    for n in range(len(prompts)):
        values = [(logs[part.__name__][n], weight) for part, weight in parts]
        totals.append(math.fsum(weight * v for v, weight in values if v is not None))
    return totals, logs
