"""`cai serve reward`: the reward server (cai.rewards.server), with the same `--judge-…` options as
every other command that calls a judge."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from cai.cli.common import ConstitutionOpt, Seed, app, err
from cai.core.errors import CaiError
from cai.core.options import JUDGE_ENGINE, with_options
from cai.data import DEFAULT_CONSTITUTION
from cai.engine.config import EngineConfig
from cai.stages.dialogue import Style

serve_app = typer.Typer(help="Serve cai's rewards to RL frameworks.", no_args_is_help=True)
app.add_typer(serve_app, name="serve")


def _reward_parts(judge_engine: EngineConfig, reward_model, rule_model, rules_judge, judge_reward, judge_weight,
                  rule_weight, rule_weights, constitution, style, seed, cache):
    """The reward's parts and weights, their models loaded and the judge's engine opened."""
    from cai.rewards.combine import PreferenceReward, check_rules_part, judge_settings, rule_model_reward

    check_rules_part(rule_model, rules_judge, rule_weights)
    judge = judge_settings(judge_engine, judge_reward, judge_weight, rules_judge, constitution, style, seed, rule_weights)
    parts = []
    if reward_model is not None:
        parts.append((PreferenceReward(reward_model), 1.0))
    if rule_model is not None:
        parts.append((rule_model_reward(rule_model, rule_weights), rule_weight))
    if judge is not None:
        parts += judge.rewards(cache, rule_weight)
        judge.judge.open()  # now: a model that cannot load stops the server before it serves
    if not parts:
        raise CaiError("no reward: give --reward-model, --rule-model, --rules-judge or --judge-reward score|pairwise")
    return parts, judge


@serve_app.command("reward")
@with_options(JUDGE_ENGINE)
def reward(
    judge_engine: EngineConfig,
    reward_model: Annotated[Optional[str], typer.Option(help="A preference model (cai train pm).")] = None,
    rule_model: Annotated[Optional[str], typer.Option(help="A rule model (cai train rules).")] = None,
    rules_judge: Annotated[bool, typer.Option("--rules-judge", help="The judge asks each of the constitution's rules.")] = False,
    judge_reward: Annotated[Optional[Literal["score", "pairwise"]], typer.Option(help="score (d-RLAIF) or pairwise (the queries of one prompt in a batch).")] = None,
    judge_weight: Annotated[float, typer.Option(min=0.0, help="The judge reward's weight.")] = 1.0,
    rule_weight: Annotated[float, typer.Option(min=0.0, help="The rules' weight (rule model or rules judge).")] = 1.0,
    rule_weights: Annotated[Optional[Path], typer.Option(help="The rules' weights fitted to people (cai fit rules).")] = None,
    constitution: ConstitutionOpt = DEFAULT_CONSTITUTION,
    style: Annotated[Style, typer.Option(help="How the judge is prompted: chat or transcript.")] = Style.chat,
    seed: Seed = 0,
    cache: Annotated[Optional[Path], typer.Option(help="The judge's request cache (SQLite file).")] = None,
    host: Annotated[str, typer.Option(help="The address to bind; 0.0.0.0 serves other machines.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="The port.")] = 5000,
    batch_wait: Annotated[float, typer.Option(min=0.0, help="Seconds a request waits for others to share its batch.")] = 0.05,
    max_batch: Annotated[int, typer.Option(min=1, help="Most queries scored in one batch.")] = 256,
):
    """Serve the reward in OpenRLHF's remote reward API (POST /get_reward; --remote_rm_url
    http://HOST:PORT/get_reward): the weighted sum of the preference model, the rule model or
    the rules judged live, and the judge's own reward, each part in extra_logs."""
    from cai.rewards.server import serve

    parts, judge = _reward_parts(judge_engine, reward_model, rule_model, rules_judge, judge_reward, judge_weight,
                                 rule_weight, rule_weights, constitution, style, seed, cache)
    names = ", ".join(f"{weight:g}·{part.__name__}" for part, weight in parts)
    err.print(f"serving reward = {names} on http://{host}:{port}/get_reward", highlight=False)
    serve(parts, host, port, batch_wait, max_batch, status=lambda: {"judge": judge.judge.stats() if judge else {}})
