"""Rule models on the tiny model: training on soft labels, evaluation, and the combined RL reward."""

import json
import math
from pathlib import Path

import pytest
import torch
from cli_run import invoke

from cai.core.errors import CaiError
from cai.core.records import Message, RuleRow
from cai.core.run import write_jsonl
from cai.data import DEMO_PROMPTS
from cai.train.rl import train_rl
from cai.train.rules import (
    RuleModel,
    RuleReward,
    eval_rules,
    soft_bce_loss,
    train_rules,
)

RULES = [("kind", "The assistant is kind.", 1.0), ("brief", "The assistant keeps it short.", 3.0)]


def rows(n: int) -> list[RuleRow]:
    """A learnable set: 'thanks' answers follow both rules (label 0.9), 'go away' ones break them (0.1)."""
    out = []
    for i in range(n):
        good = i % 2 == 0
        for rule_id, rule, weight in RULES:
            out.append(RuleRow(
                prompt=[Message(role="user", content=f"question {i}")],
                completion=[Message(role="assistant", content="thanks, glad to help" if good else "go away now")],
                rule_id=rule_id, rule=rule, weight=weight, label=0.9 if good else 0.1, id=str(i), response_index=0,
            ))
    return out


@pytest.fixture(scope="module")
def rule_set(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "rules.jsonl"
    write_jsonl(path, rows(8))
    return path


@pytest.fixture(scope="module")
def rule_model(tmp_path_factory, tiny_model, rule_set) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("rule-model") / "rm"
    info = train_rules(rule_set, str(tiny_model), out, overrides={
        "max_steps": 40, "per_device_train_batch_size": 8, "learning_rate": 3e-3, "warmup_steps": 0})
    return out, info


def test_soft_bce_matches_a_hand_computation():
    logits, labels = torch.tensor([2.0, -1.0]), torch.tensor([0.9, 0.3])
    sig = [1 / (1 + math.exp(-x)) for x in (2.0, -1.0)]
    by_hand = -sum(p * math.log(s) + (1 - p) * math.log(1 - s) for p, s in zip((0.9, 0.3), sig)) / 2
    assert soft_bce_loss(logits, labels).item() == pytest.approx(by_hand, rel=1e-6)


@pytest.mark.slow
def test_training_learns_the_labels_and_records_the_rules(rule_model, rule_set):
    out, info = rule_model
    assert info["job"] == "rules" and math.isfinite(info["metrics"]["train_loss"])
    record = json.loads((out / "cai_train.json").read_text())
    assert record["rules"] == [{"id": i, "rule": r, "weight": w} for i, r, w in RULES]
    assert record["data_sha256"] and record["config"]["max_steps"] == 40

    summary = eval_rules(str(out), rule_set)
    assert summary["n"] == 16 and summary["accuracy"] == 1.0 and 0 <= summary["ece"] <= 1
    assert set(summary["by_group"]) == {"kind", "brief"}


@pytest.mark.slow
def test_rows_must_come_from_one_constitution(tmp_path, tiny_model):
    broken = rows(2)
    broken[2] = broken[2].model_copy(update={"rule": "Another text."})
    write_jsonl(tmp_path / "r.jsonl", broken)
    with pytest.raises(CaiError, match="rule 'kind' appears with two texts"):
        train_rules(tmp_path / "r.jsonl", str(tiny_model), tmp_path / "out", overrides={"max_steps": 1})


@pytest.mark.slow
def test_the_rule_reward_is_the_weighted_mean_of_log_odds(rule_model):
    out, _ = rule_model
    reward = RuleReward(str(out))
    prompts = [[{"role": "user", "content": "question 1"}]] * 2
    completions = [[{"role": "assistant", "content": "thanks, glad to help"}],
                   [{"role": "assistant", "content": "go away now"}]]
    logged = {}
    values = reward(prompts, completions, log_metric=logged.__setitem__)
    by_rule = {rule_id: RuleModel(str(out)).log_odds(prompts, completions, [rule] * 2) for rule_id, rule, _ in RULES}
    expected = [(1.0 * by_rule["kind"][i] + 3.0 * by_rule["brief"][i]) / 4 for i in range(2)]
    assert values == pytest.approx(expected, abs=1e-5)
    assert values[0] > 0 > values[1]  # the trained model tells the kind answer from the rude one
    assert logged == pytest.approx({f"rules/{k}": sum(v) / 2 for k, v in by_rule.items()}, abs=1e-5)


@pytest.mark.slow
def test_grpo_rewards_pm_plus_beta_rules_each_logged(tmp_path, tiny_model, rule_model):
    from cai.train.preference import _reward_model

    model, tokenizer = _reward_model(str(tiny_model))
    model.save_pretrained(tmp_path / "pm")
    tokenizer.save_pretrained(tmp_path / "pm")
    info = train_rl(DEMO_PROMPTS, str(tiny_model), str(tmp_path / "pm"), tmp_path / "grpo", "grpo", limit=4,
                    overrides={"max_steps": 2, "per_device_train_batch_size": 2, "num_generations": 2,
                               "max_completion_length": 8},
                    rule_model=str(rule_model[0]), rule_weight=0.5)
    assert (info["rule_model"], info["rule_weight"]) == (str(rule_model[0]), 0.5)
    assert [r["id"] for r in info["rules"]] == ["kind", "brief"] and info["config"]["reward_weights"] == [1.0, 0.5]
    history = info["reward_history"]
    assert len(history) == 2
    for entry in history:  # R = R_pref + β·R_rules, each part logged on its own
        assert entry["reward"] == pytest.approx(entry["rewards/pm/mean"] + 0.5 * entry["rewards/rules/mean"], abs=1e-4)
        assert {"rules/kind", "rules/brief"} <= set(entry)


@pytest.mark.slow
def test_fitted_rule_weights_make_the_rule_reward_their_weighted_sum_in_grpo(tmp_path, tiny_model, rule_model):
    from cai.metrics.rule_weights import load_weights, write_weights
    from cai.train.preference import _reward_model

    weights = tmp_path / "weights.json"
    write_weights(weights, {"rules": [{"id": "kind", "weight": 2.0}, {"id": "brief", "weight": -0.5}]})
    reward = RuleReward(str(rule_model[0]), load_weights(weights))
    prompts = [[{"role": "user", "content": "question 1"}]]
    completions = [[{"role": "assistant", "content": "thanks, glad to help"}]]
    by_rule = {rule_id: RuleModel(str(rule_model[0])).log_odds(prompts, completions, [rule])[0] for rule_id, rule, _ in RULES}
    assert reward(prompts, completions) == pytest.approx([2.0 * by_rule["kind"] - 0.5 * by_rule["brief"]], abs=1e-5)
    write_weights(tmp_path / "other.json", {"rules": [{"id": "kind", "weight": 1.0}]})
    with pytest.raises(CaiError, match="fit them with the constitution the rule model learned"):
        RuleReward(str(rule_model[0]), load_weights(tmp_path / "other.json"))

    model, tokenizer = _reward_model(str(tiny_model))
    model.save_pretrained(tmp_path / "pm")
    tokenizer.save_pretrained(tmp_path / "pm")
    info = train_rl(DEMO_PROMPTS, str(tiny_model), str(tmp_path / "pm"), tmp_path / "grpo", "grpo", limit=4,
                    overrides={"max_steps": 2, "per_device_train_batch_size": 2, "num_generations": 2,
                               "max_completion_length": 8},
                    rule_model=str(rule_model[0]), rule_weights=weights)
    assert info["rule_weights"] == str(weights) and [r["weight"] for r in info["rules"]] == [2.0, -0.5]
    assert len(info["reward_history"]) == 2
    with pytest.raises(CaiError, match="give --rule-model or --rules-judge too"):
        train_rl(DEMO_PROMPTS, str(tiny_model), str(tmp_path / "pm"), tmp_path / "g2", "grpo", rule_weights=weights)


@pytest.mark.slow
def test_ppo_refuses_a_rule_model(tmp_path, tiny_model, rule_model):
    with pytest.raises(CaiError, match="use --algo rloo or --algo grpo"):
        train_rl(DEMO_PROMPTS, str(tiny_model), str(tiny_model), tmp_path / "ppo", "ppo", rule_model=str(rule_model[0]))


def test_a_model_that_is_no_rule_model_is_refused(tmp_path, tiny_model):
    with pytest.raises(CaiError, match="not a rule model"):
        RuleReward(str(tiny_model))


@pytest.mark.slow
def test_rule_commands(tmp_path, tiny_model, rule_set):
    result = invoke(["train", "rules", "--data", str(rule_set), "--model", str(tiny_model),
                                 "--out", str(tmp_path / "rm"), "--max-steps", "1", "--batch-size", "4",
                                 "--max-length", "64", "--lora"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "rm" / "cai_train.json").read_text())
    assert (record["max_length"], record["lora"]) == (64, True)
    assert (tmp_path / "rm" / "config.json").is_file()  # adapters merged: a plain model
    result = invoke(["eval", "rules", "--model", str(tmp_path / "rm"), "--data", str(rule_set),
                                 "--limit", "6"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout[result.stdout.index("{"):])["n"] == 6
    result = invoke(["eval", "rules", "--data", str(rule_set)])
    assert result.exit_code != 0 and "one of --model" in str(result.exception)
