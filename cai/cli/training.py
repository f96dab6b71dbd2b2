"""`cai train sft|dpo|pm|ppo|rules`: TRL training jobs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from cai.cli.common import ConstitutionOpt, Limit, Model, Out, Seed, TrainData, app, out
from cai.core.errors import CaiError
from cai.core.options import JUDGE_ENGINE, ConfigOptions, with_options
from cai.data import DEFAULT_CONSTITUTION
from cai.engine.config import EngineConfig
from cai.train.common import TrainingFlags

train_app = typer.Typer(help="Train with TRL: SFT, preference model, PPO/RLOO/GRPO, DPO.", no_args_is_help=True)

app.add_typer(train_app, name="train")


TRAINING = ConfigOptions(TrainingFlags, "training", flags={"sets": "set"})


def _trained(info: dict, out_dir: Path) -> None:
    from cai.train.common import distributed

    if not distributed().is_main_process:  # under `accelerate launch`, the main process reports
        return
    metrics = {k: round(v, 4) if isinstance(v, float) else v for k, v in info["metrics"].items()}
    out.print(f"{info['job']}: trained in {info['seconds']} s; model saved to {out_dir}")
    out.print(json.dumps(metrics))


def _policy_training(name: str, doc: str, train):
    """`cai train sft` and `cai train dpo`: the same options, another TRL trainer."""

    def command(data: TrainData, model: Model, out_dir: Out, training: TrainingFlags):
        _trained(train()(data, model, out_dir, training.config, training.overrides(), training.lora), out_dir)

    command.__doc__ = doc
    train_app.command(name)(with_options(TRAINING)(command))


def _sft():
    from cai.train.sft import train_sft

    return train_sft


def _dpo():
    from cai.train.preference import train_dpo

    return train_dpo

_policy_training("sft", "SL-CAI fine-tuning with TRL's SFTTrainer (loss on the assistant's answer only).", _sft)

_policy_training("dpo", "Train the policy directly on the preference set with TRL's DPOTrainer.", _dpo)


@train_app.command("pm")
@with_options(TRAINING)
def train_pm(
    data: Annotated[Path, typer.Option(help="The preference set (cai export prefs).")],
    model: Model,
    out_dir: Out,
    training: TrainingFlags,
    loss: Annotated[Literal["soft", "margin", "hard"], typer.Option(
        help="soft: cross-entropy with p_chosen (the paper); margin: TRL's margin; hard: labels only.")] = "soft",
):
    """Train a preference model (one score per answer) with TRL's RewardTrainer."""
    from cai.train.preference import train_pm as run

    _trained(run(data, model, out_dir, loss, training.config, training.overrides(), training.lora), out_dir)


JudgeReward = Annotated[Optional[Literal["score", "pairwise"]], typer.Option(
    help="The judge's own reward: score (d-RLAIF: its 1-10 rating, scaled to [-1, 1]) or pairwise (mean win "
         "probability in the prompt's group, both orders).")]
JudgeWeight = Annotated[float, typer.Option(min=0.0, help="The judge reward's weight in the sum.")]
RulesJudge = Annotated[bool, typer.Option("--rules-judge", help="The judge asks each of the constitution's rules live, in place of a rule model.")]


@train_app.command("ppo")
@with_options(JUDGE_ENGINE, TRAINING)
def train_ppo(
    prompts: Annotated[Path, typer.Option(help="Red-team prompts, in any format cai generate reads.")],
    policy: Annotated[str, typer.Option(help="The policy to train (e.g. the SL-CAI model).")],
    out_dir: Out,
    judge_engine: EngineConfig,
    training: TrainingFlags,
    reward_model: Annotated[Optional[str], typer.Option(help="The preference model (cai train pm); optional with a judge's reward.")] = None,
    kl_coef: Annotated[Optional[float], typer.Option(min=0.0, help="KL penalty towards the starting policy.")] = None,
    algo: Annotated[Literal["ppo", "rloo", "grpo"], typer.Option(help="The RL algorithm (TRL's trainer).")] = "ppo",
    limit: Limit = None,
    rule_model: Annotated[Optional[str], typer.Option(help="A rule model (cai train rules) added to the reward; rloo and grpo only.")] = None,
    rule_weight: Annotated[float, typer.Option(min=0.0, help="β in R = R_pref + β·R_rules.")] = 1.0,
    rule_weights: Annotated[Optional[Path], typer.Option(help="The rules' weights fitted to people (cai fit rules): R_rules is then their weighted sum of the rule model's (or the rules judge's) log-odds.")] = None,
    judge_reward: JudgeReward = None,
    judge_weight: JudgeWeight = 1.0,
    rules_judge: RulesJudge = False,
    constitution: ConstitutionOpt = DEFAULT_CONSTITUTION,
    seed: Seed = 0,
):
    """RLAIF: train the policy against the preference model (PPO, or RLOO / GRPO, optionally plus rule
    models, the rules judged live and the judge's own reward; a judge alone is a complete reward)."""
    from cai.rewards.combine import judge_settings
    from cai.train.rl import train_rl

    overrides = training.overrides()
    if algo == "ppo" and overrides.pop("max_steps", None) is not None:
        raise CaiError("PPO counts episodes, not steps: use --set total_episodes=N")
    judge = judge_settings(judge_engine, judge_reward, judge_weight, rules_judge, constitution, seed=seed,
                           rule_weights=rule_weights)
    info = train_rl(prompts, policy, reward_model, out_dir, algo, kl_coef, limit, training.config, overrides, training.lora,
                    rule_model, rule_weight, rule_weights, judge)
    _trained(info, out_dir)
    if info.get("judge") and info["judge"]["requests"]:  # counted where the judge ran: the main process
        requests = info["judge"]["requests"]
        out.print(f"judge: {requests.get('requests', 0)} requests, {requests.get('cached', 0)} from the cache, "
                  f"{requests.get('failed', 0)} failed")


@train_app.command("rules")
@with_options(TRAINING)
def train_rules(
    data: Annotated[Path, typer.Option(help="The rule set (cai export rules).")],
    model: Model,
    out_dir: Out,
    training: TrainingFlags,
    max_length: Annotated[int, typer.Option(min=16, help="Most tokens per input (cut from the left).")] = 1024,
):
    """Train one rule model (a classifier of rule + conversation) on the judge's soft labels (the
    TRL config here is transformers' TrainingArguments)."""
    from cai.train.rules import train_rules as run_training

    _trained(run_training(data, model, out_dir, training.config, training.overrides(), training.lora, max_length),
             out_dir)
