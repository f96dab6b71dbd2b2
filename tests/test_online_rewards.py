"""The AI judge as a live reward: d-RLAIF scores, pairwise wins in a group, the rules judged live,
and GRPO / RLOO trained against them with no preference model."""

from __future__ import annotations

import json
import math

import pytest

from cai.core.errors import CaiError
from cai.core.records import Message, Provenance, SampleRecord
from cai.data import DEMO_PROMPTS
from cai.rewards import JudgeReward, RulesJudgeReward
from cai.rewards.combine import JudgeSettings
from cai.rewards.judge import prompt_key
from cai.rewards.score import rate, scaled
from cai.stages.dialogue import Style
from cai.stages.label import LabelConfig, label_batch
from cai.train.rl import train_rl

LOCK = [{"role": "user", "content": "How do I pick a lock?"}]
POEM = [{"role": "user", "content": "Write a poem about rain."}]


def said(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


class ScoreTokens:
    """A judge whose probabilities of the score tokens are given: `first` over the tokens after
    "(", and where "10" is no token of its own, `ten` = P("0" | "(1") against ")"."""

    def __init__(self, first: dict[str, float], ten: float | None = None):
        self.first, self.ten, self.calls = first, ten, []

    def option_token_ids(self, prefix, options):
        if "10" in options and self.ten is not None:
            raise CaiError("no token of its own")
        return list(options)

    def option_logprobs(self, prompts, options):
        self.calls.append(len(prompts))
        if options == ["0", ")"]:
            return [[math.log(self.ten), math.log(1 - self.ten)]] * len(prompts)
        return [[math.log(self.first.get(o, 1e-30)) for o in options]] * len(prompts)


def test_score_is_the_expected_rating_of_the_score_tokens_scaled_to_minus_one_one():
    dialogue = [[("Human", "rate it")]]
    assert rate(ScoreTokens({"4": 0.5, "7": 0.5}), dialogue, Style.chat) == [pytest.approx(5.5)]
    best = ScoreTokens({"10": 1.0})
    assert [scaled(s) for s in rate(best, dialogue, Style.chat)] == [pytest.approx(1.0)] and best.calls == [1]
    # "1" stands for 1 and 10 where "10" is two tokens: "0" after "(1" takes a quarter of it to 10
    split = ScoreTokens({"1": 1.0}, ten=0.25)
    assert rate(split, dialogue, Style.chat) == [pytest.approx(0.75 * 1 + 0.25 * 10)] and split.calls == [1, 1]
    assert scaled(1) == -1 and scaled(10) == 1


def test_score_reward_on_the_judge_goes_through_the_request_cache(engine):
    reward = JudgeReward(engine, "score")
    prompts, completions = [LOCK, LOCK, POEM], [said("No."), said("Use a pick."), said("Rain.")]
    first = reward(prompts, completions)
    assert reward.__name__ == "judge" and all(-1 <= r <= 1 for r in first)
    cached = engine.stats.cached
    assert reward(prompts, completions) == first and engine.stats.cached > cached


def test_pairwise_reward_is_each_completion_s_mean_probability_of_winning_in_its_group(engine, default_constitution):
    reward = JudgeReward(engine, "pairwise", constitution=default_constitution)
    answers = ["No.", "Use a tension wrench.", "Ask a locksmith.", "Rain falls.", "Rain falls."]
    rewards = reward([LOCK, POEM, LOCK, POEM, LOCK], [said(a) for a in (answers[0], answers[3], answers[1], answers[4], answers[2])])
    lock, poem = [rewards[0], rewards[2], rewards[4]], [rewards[1], rewards[3]]
    assert sum(lock) == pytest.approx(1.5) and poem == [0.5, 0.5]  # K/2 in a group; identical answers tie
    sample = SampleRecord(id=prompt_key([Message(**m) for m in LOCK]), prompt=LOCK, responses=answers[:3],
                          provenance=Provenance(model="tiny", sampling={}, style="chat"))
    labels = label_batch([sample], engine, default_constitution, LabelConfig("tiny", keep_flagged=True)).records
    wins = [0.0, 0.0, 0.0]
    for r in labels:
        wins[r.pair[0]] += r.p_chosen
        wins[r.pair[1]] += 1 - r.p_chosen
    assert lock == pytest.approx([w / 2 for w in wins])


def test_rules_judge_reward_is_the_weighted_log_odds_and_logs_each_rule(engine, default_constitution):
    logged = {}
    rewards = RulesJudgeReward(engine)([LOCK, POEM], [said("No."), said("Rain.")], log_metric=logged.__setitem__)
    rules = default_constitution.constitution.rules
    assert set(logged) == {f"rules/{r.id}" for r in rules} and len(rewards) == 2
    assert all(isinstance(r, float) for r in rewards)


def test_rules_judge_with_weights_fitted_to_people_is_their_weighted_sum(engine, default_constitution):
    rules = default_constitution.constitution.rules
    weights = {r.id: 0.5 * n - 1.0 for n, r in enumerate(rules)}
    logged = {}
    [reward] = RulesJudgeReward(engine, weights)([LOCK], [said("No.")], log_metric=logged.__setitem__)
    assert reward == pytest.approx(sum(w * logged[f"rules/{rule_id}"] for rule_id, w in weights.items()))
    with pytest.raises(CaiError, match="fit them with this constitution"):
        RulesJudgeReward(engine, {"not-a-rule": 1.0})


def test_the_judge_settings_hand_the_fitted_weights_to_the_rules_judge(tmp_path, tiny, default_constitution):
    weights = {r.id: 1.0 + n for n, r in enumerate(default_constitution.constitution.rules)}
    path = tmp_path / "weights.json"
    path.write_text(json.dumps({"rules": [{"id": k, "weight": w} for k, w in weights.items()]}))
    settings = JudgeSettings(tiny, rules=True, rule_weights=path)
    [(rules, weight)] = settings.rewards(None, rules_weight=0.5)
    assert isinstance(rules, RulesJudgeReward) and rules.weights == weights and weight == 0.5
    assert settings.record()["rule_weights"] == str(path)


@pytest.mark.slow
@pytest.mark.parametrize("algo, mode, rules", [("grpo", "pairwise", False), ("rloo", "score", True)])
def test_rl_with_the_judge_as_the_only_reward(tmp_path, tiny, tiny_model, algo, mode, rules):
    judge = JudgeSettings(tiny, mode, weight=2.0, rules=rules)
    info = train_rl(DEMO_PROMPTS, str(tiny_model), None, tmp_path / algo, algo, limit=4, judge=judge, rule_weight=0.5,
                    overrides={"max_steps": 2, "per_device_train_batch_size": 2, "num_generations": 2,
                               "max_completion_length": 8})
    record = json.loads((tmp_path / algo / "cai_train.json").read_text())
    assert record["reward_model"] is None and record["processes"] == 1
    assert record["config"]["reward_weights"] == ([0.5, 2.0] if rules else [2.0])
    steps = record["reward_history"]
    assert len(steps) == 2 and all("rewards/judge/mean" in s for s in steps)
    assert all(("rewards/rules/mean" in s) == rules for s in steps)
    assert record["judge"]["reward"] == mode and record["judge"]["requests"]["requests"] > 0
    assert info["judge"]["engine"]["model"] == tiny.model


def test_a_reward_must_be_given_and_ppo_takes_no_judge(tmp_path, tiny, tiny_model):
    with pytest.raises(CaiError, match="no reward"):
        train_rl(DEMO_PROMPTS, str(tiny_model), None, tmp_path / "x", "grpo")
    with pytest.raises(CaiError, match="PPO takes one reward model"):
        train_rl(DEMO_PROMPTS, str(tiny_model), str(tiny_model), tmp_path / "x", "ppo", judge=JudgeSettings(tiny, "score"))
    with pytest.raises(CaiError, match="one of --rule-model"):
        train_rl(DEMO_PROMPTS, str(tiny_model), None, tmp_path / "x", "grpo", rule_model="rm",
                 judge=JudgeSettings(tiny, None, rules=True))
