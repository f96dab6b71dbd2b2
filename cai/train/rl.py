"""RLAIF: the policy is trained against the preference model as its reward.

`ppo` is TRL's PPOTrainer (from trl.experimental.ppo, TRL 1.12) with a value model started from the
preference model; `rloo` and `grpo` are TRL's trainers of those names with the preference model as
the reward function. With a rule model (`cai train rules`), RLOO and GRPO get a second reward
function, the rule model's weighted log-odds (the constitution's weights, or with `--rule-weights` those
fitted to people by `cai fit rules`), weighted by β: R = R_pref + β·R_rules, each part logged by TRL
on its own (`rewards/<PM folder>/*`, `rewards/rules/*`). The AI judge may add its own reward
(`cai.rewards`: d-RLAIF scores or pairwise wins in the group, `rewards/judge/*`) and may judge the
rules live in place of a rule model; a judge alone is a complete reward.
"""

from __future__ import annotations

from pathlib import Path

from cai.core.errors import CaiError
from cai.io.inputs import load_prompts
from cai.rewards.combine import check_rules_part, rule_model_reward
from cai.train.common import Record, build_config, lora_config, model_path, save

ALGOS = ("ppo", "rloo", "grpo")


def check_same_tokenizer(policy_tokenizer, reward_tokenizer, policy: str, reward_model: str) -> None:
    """PPO feeds the policy's tokens straight to the reward model: their vocabularies must match."""
    if policy_tokenizer.get_vocab() != reward_tokenizer.get_vocab():
        raise CaiError(
            f"PPO needs the reward model to share the policy's tokenizer, and '{reward_model}' does "
            f"not share '{policy}'s: train the preference model from the policy's base model, "
            "or use --algo rloo or grpo, which re-tokenize for the reward model"
        )


def online_trainer(algo: str):
    """TRL's RLOO or GRPO config and trainer classes.

    TRL 1.12 knows vLLM up to 0.27, and its vLLM client fails to import beside vLLM 0.32. These
    trainers generate with transformers here (use_vllm=False), so while they load, TRL is told
    that vLLM is absent.
    """
    import importlib

    trl_imports = importlib.import_module("trl.import_utils")

    real = trl_imports.is_vllm_available
    trl_imports.is_vllm_available = lambda *args, **kwargs: False
    try:
        if algo == "rloo":
            from trl import RLOOConfig, RLOOTrainer

            return RLOOConfig, RLOOTrainer
        from trl import GRPOConfig, GRPOTrainer

        return GRPOConfig, GRPOTrainer
    finally:
        trl_imports.is_vllm_available = real


def _prompts(prompts: Path, limit: int | None) -> list[list[dict]]:
    rows, problems = load_prompts(prompts, limit=limit, stage="train_rl")
    if not rows:
        raise CaiError(f"{prompts}: no usable prompts")
    return [[m.model_dump() for m in row.prompt] for row in rows]


def _check_rewards(algo: str, reward_model: str | None, rule_model: str | None, judge, rule_weights) -> None:
    if algo not in ALGOS:
        raise CaiError(f"--algo must be one of {', '.join(ALGOS)}")
    if algo == "ppo" and (rule_model is not None or judge is not None):
        raise CaiError("PPO takes one reward model, so --rule-model, --rules-judge and --judge-reward cannot be "
                       "combined with it: use --algo rloo or --algo grpo")
    if algo == "ppo" and reward_model is None:
        raise CaiError("PPO needs --reward-model")
    check_rules_part(rule_model, judge is not None and judge.rules, rule_weights)
    if reward_model is None and rule_model is None and (judge is None or not (judge.reward or judge.rules)):
        raise CaiError("no reward: give --reward-model, --judge-reward score|pairwise, a rule model or --rules-judge")


def train_rl(prompts: Path, policy: str, reward_model: str | None, out: Path, algo: str = "ppo",
             kl_coef: float | None = None, limit: int | None = None, config_file: Path | None = None,
             overrides: dict | None = None, lora: bool = False, rule_model: str | None = None,
             rule_weight: float = 1.0, rule_weights: Path | None = None, judge=None) -> dict:
    """`judge`: a cai.rewards.combine.JudgeSettings, the judge's parts of the reward (rloo, grpo)."""
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    _check_rewards(algo, reward_model, rule_model, judge, rule_weights)
    policy_path = model_path(policy)
    reward_path = model_path(reward_model) if reward_model is not None else None
    tokenizer = AutoTokenizer.from_pretrained(policy_path, padding_side="left")
    reward_tokenizer = AutoTokenizer.from_pretrained(reward_path) if reward_path else None
    for t in (tokenizer, reward_tokenizer):
        if t is not None and t.pad_token_id is None:
            t.pad_token = t.eos_token
    conversations = _prompts(prompts, limit)

    def reward_net():
        net = AutoModelForSequenceClassification.from_pretrained(reward_path, num_labels=1, dtype=torch.float32)
        net.config.pad_token_id = reward_tokenizer.pad_token_id
        return net

    overrides = dict(overrides or {})
    extra = {"reward_model": reward_model, "lora": lora}
    if algo == "ppo":
        from trl.experimental.ppo import PPOConfig, PPOTrainer

        check_same_tokenizer(tokenizer, reward_tokenizer, policy, reward_model)
        config = build_config(PPOConfig, out, config_file, {"kl_coef": kl_coef, **overrides})
        ids = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=True, return_dict=False) for c in conversations]
        batch = config.per_device_train_batch_size * config.gradient_accumulation_steps
        if len(ids) < batch:  # TRL's PPO would wait forever for a first full batch
            raise CaiError(f"PPO takes batches of {batch} prompts and {prompts} gives {len(ids)}: "
                           "give more prompts or a smaller --batch-size")
        dataset = Dataset.from_dict({"input_ids": ids})
        trainer = PPOTrainer(
            args=config,
            processing_class=tokenizer,
            model=AutoModelForCausalLM.from_pretrained(policy_path, dtype=torch.float32),
            ref_model=AutoModelForCausalLM.from_pretrained(policy_path, dtype=torch.float32),
            reward_model=reward_net(),
            value_model=reward_net(),
            train_dataset=dataset,
            peft_config=lora_config(lora, "CAUSAL_LM"),
        )
    else:
        Config, Trainer = online_trainer(algo)
        reward_funcs, processing, weights = [], [], []
        if reward_model is not None:
            reward_funcs, processing, weights = [reward_net()], [reward_tokenizer], [1.0]
        if rule_model is not None:
            rules = rule_model_reward(rule_model, rule_weights)
            reward_funcs.append(rules)
            processing.append(None)
            weights.append(rule_weight)
            extra.update(rule_model=rule_model, rule_weight=rule_weight, rules=rules.rules,
                         rule_weights=str(rule_weights) if rule_weights else None)
        if judge is not None:
            for func, weight in judge.rewards(Path(out) / "judge_cache.sqlite", rule_weight):
                reward_funcs.append(func)
                processing.append(None)
                weights.append(weight)
            if judge.rules:
                extra["rule_weight"] = rule_weight
        overrides["reward_weights"] = weights
        config = build_config(Config, out, config_file, {"beta": kl_coef, **overrides})
        trainer = Trainer(
            model=AutoModelForCausalLM.from_pretrained(policy_path, dtype=torch.float32),
            reward_funcs=reward_funcs,
            args=config,
            train_dataset=Dataset.from_dict({"prompt": conversations}),
            processing_class=tokenizer,
            reward_processing_classes=processing,
            peft_config=lora_config(lora, "CAUSAL_LM"),
        )
    record = Record(out, algo, prompts, policy, config, extra)
    result = trainer.train()
    model = trainer.accelerator.unwrap_model(trainer.model)
    save(getattr(model, "policy", model), tokenizer, out)  # PPO's model wraps policy and value model
    if judge is not None:  # the judge's settings and requests (counted where it ran: the main process)
        record.info["judge"] = judge.record()
    # PPOTrainer.train returns nothing: keep its last logged metrics instead.
    metrics = result.metrics if result is not None else (trainer.state.log_history or [{}])[-1]
    if algo != "ppo":  # each reward part per logged step, so a user sees which one moved
        record.info["reward_history"] = [
            {k: v for k, v in entry.items() if k == "step" or k.startswith(("reward", "rules/"))}
            for entry in trainer.state.log_history if "reward" in entry
        ]
    return record.done(metrics, trainer.state.log_history)
