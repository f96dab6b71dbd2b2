"""Rewards for RL from the AI judge, live: for `cai train ppo --algo grpo|rloo`, for `cai serve
reward`, and for anyone's own TRL script (`GRPOTrainer(reward_funcs=[JudgeReward(...)])`)."""

from cai.rewards.judge import Judge, JudgeReward, RulesJudgeReward

__all__ = ["Judge", "JudgeReward", "RulesJudgeReward"]
