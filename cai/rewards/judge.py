"""The AI judge as a live reward for RL, in TRL's reward-function form.

`JudgeReward` rates completions while the policy trains: `score` is d-RLAIF (the judge's 1–10 rating
of each completion under a preference principle drawn per prompt, scaled to [-1, 1]); `pairwise`
compares every pair of completions of one prompt (a GRPO or RLOO group) with `cai label`'s
both-orders judgement, and a completion's reward is its mean probability of beating the others.
`RulesJudgeReward` asks the judge about each of the constitution's rules (as `cai rules` does), in
place of a trained rule model. Each is an item for `GRPOTrainer(reward_funcs=[...])` or RLOO's.

Their requests go through an `Engine` and its request cache. Under several processes (`accelerate
launch`), every process hands its completions to the main one, which judges them all in one call
and sends each process its rewards back: a GRPO group split over processes is judged whole.
"""

from __future__ import annotations

import hashlib
import json
from itertools import combinations
from pathlib import Path

from cai.constitution.principles import draw
from cai.constitution.schema import LoadedConstitution, load_constitution
from cai.core.errors import CaiError
from cai.core.records import Message, Provenance, SampleRecord
from cai.data import DEFAULT_CONSTITUTION
from cai.engine.config import EngineConfig
from cai.engine.engine import Engine, Failed
from cai.rewards.score import rate, scaled
from cai.stages.dialogue import Style
from cai.stages.judge import margin, p_x_better, score_question_text
from cai.stages.label import LabelConfig, label_batch
from cai.stages.rules import judge_rules, weighted_score

MODES = ("score", "pairwise")


def as_messages(prompt) -> list[Message]:
    """A TRL prompt (a conversation, or plain text) as the judge's conversation."""
    if isinstance(prompt, str):
        return [Message(role="user", content=prompt)]
    return [Message(role=m["role"], content=m["content"]) for m in prompt]


def completion_text(completion) -> str:
    """A TRL completion (assistant messages, or plain text) as the reply's text."""
    if isinstance(completion, str):
        return completion
    return "".join(m["content"] for m in completion)


def prompt_key(conversation: list[Message]) -> str:
    """Names a prompt for seeded draws and groups: the same conversation, the same key."""
    text = json.dumps([m.model_dump() for m in conversation], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def on_main_process(judge, items: list) -> list:
    """`judge(items)` for this process's items; under several processes, the main one judges every
    process's items in one call and sends each its share back (the others never open the judge)."""
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list, gather_object

    state = PartialState()
    if state.num_processes == 1:
        return judge(items)
    sizes = gather_object([len(items)])
    everything = gather_object(items)
    box = [judge(everything) if state.is_main_process else None]
    broadcast_object_list(box, from_process=0)
    start = sum(sizes[: state.process_index])
    return box[0][start : start + len(items)]


class Judge:
    """The judge's engine, opened on first use (on the main process only), with its request cache;
    one `Judge` serves every judged reward of a trainer, so a process holds one engine."""

    def __init__(self, judge: str | EngineConfig | Engine, cache: Path | None = None):
        self._engine = judge if isinstance(judge, Engine) else None
        self.config = None if self._engine else EngineConfig(judge) if isinstance(judge, str) else judge
        self.cache = Path(cache) if cache else None

    @property
    def name(self) -> str:
        return self.config.model if self.config else self._engine.identity

    def open(self) -> Engine:
        """The engine, opened on the first call."""
        if self._engine is None:
            from accelerate import PartialState

            if PartialState().num_processes > 1 and not self.config.servers:
                raise CaiError("under several processes the judge must be a server they share: give "
                               "--judge-server URL (README: Scaling out); an in-process vLLM engine would join "
                               "the training processes' own torch.distributed group")
            if self.cache is None:
                self._engine = self.config.open()
            else:
                from cai.executors.local import shared_engine

                self._engine = shared_engine(self.config, self.cache)
        return self._engine

    def stats(self) -> dict:
        return self._engine.stats.to_dict() if self._engine is not None else {}


class _JudgedReward:
    """What the judged rewards share: the judge, the constitution, the style and seed, and TRL's call.
    `judged` gives, per completion, a dict of the reward (under the reward's name) and any parts
    of it worth logging, or None where the judge failed (TRL then leaves this reward out)."""

    name = "judge"

    def __init__(self, judge: str | EngineConfig | Engine | Judge,
                 constitution: Path | LoadedConstitution = DEFAULT_CONSTITUTION,
                 style: Style | str = Style.chat, seed: int = 0, cache: Path | None = None):
        self.__name__ = self.name  # what TRL logs this reward under: rewards/<name>/mean
        self.judge = judge if isinstance(judge, Judge) else Judge(judge, cache)
        loaded = constitution if isinstance(constitution, LoadedConstitution) else load_constitution(constitution)
        self.constitution, self.style, self.seed = loaded, Style(style), seed

    def __call__(self, prompts, completions, log_metric=None, **kwargs) -> list[float | None]:
        items = [([m.model_dump() for m in as_messages(p)], completion_text(c)) for p, c in zip(prompts, completions)]
        judged = on_main_process(self.judged, items)
        if log_metric is not None:  # every process logs the same names: TRL averages them across processes
            for key in self.parts():
                values = [j[key] for j in judged if j is not None]
                log_metric(key, sum(values) / len(values) if values else float("nan"))
        return [None if j is None else j[self.name] for j in judged]

    def judged(self, items: list[tuple[list[dict], str]]) -> list[dict | None]:
        """For each (conversation, reply): its reward and parts, or None; then the cache is written."""
        engine = self.judge.open()
        conversations = [[Message(**m) for m in conversation] for conversation, _ in items]
        judged = self.judge_batch(engine, conversations, [reply for _, reply in items])
        engine.commit()
        return judged

    def parts(self) -> list[str]:
        return []


class JudgeReward(_JudgedReward):
    """The judge's reward: `score` (d-RLAIF, in [-1, 1]) or `pairwise` (mean win probability in the
    group of completions of one prompt, in [0, 1])."""

    def __init__(self, judge: str | EngineConfig | Engine | Judge, mode: str = "score", **kwargs):
        if mode not in MODES:
            raise CaiError(f"the judge's reward is one of {', '.join(MODES)}, not '{mode}'")
        super().__init__(judge, **kwargs)
        self.mode = mode
        if not self.constitution.constitution.preference:
            raise CaiError(f"{self.constitution.path} has no preference principles for the judge to ask")

    def judge_batch(self, engine: Engine, conversations: list[list[Message]], replies: list[str]) -> list[dict | None]:
        rewards = (self._scores if self.mode == "score" else self._pairwise)(engine, conversations, replies)
        return [None if r is None else {self.name: r} for r in rewards]

    def _scores(self, engine, conversations, replies):
        principles = self.constitution.constitution.preference
        dialogues = [
            [("Human", score_question_text(c, r, draw(principles, self.seed, prompt_key(c), 0).question))]
            for c, r in zip(conversations, replies)
        ]
        return [None if isinstance(s, Failed) else scaled(s) for s in rate(engine, dialogues, self.style)]

    def _pairwise(self, engine, conversations, replies):
        groups: dict[str, list[int]] = {}
        for n, conversation in enumerate(conversations):
            groups.setdefault(prompt_key(conversation), []).append(n)
        provenance = Provenance(model=self.judge.name, sampling={}, style=self.style.value)
        samples = [SampleRecord(id=key, prompt=conversations[ns[0]], responses=[replies[n] for n in ns],
                                provenance=provenance) for key, ns in groups.items()]
        config = LabelConfig(self.judge.name, self.style, seed=self.seed, keep_flagged=True)
        beats = {}  # (group, i, j) -> P(answer i beats answer j); identical or failed pairs are even
        for record in label_batch(samples, engine, self.constitution, config).records:
            group, (winner, loser) = record.id.rsplit(":", 1)[0], record.pair
            beats[group, winner, loser], beats[group, loser, winner] = record.p_chosen, 1 - record.p_chosen
        rewards: list = [None] * len(replies)
        for group, ns in groups.items():
            wins = [0.0] * len(ns)
            for i, j in combinations(range(len(ns)), 2):
                p = beats.get((group, i, j), 0.5)
                wins[i], wins[j] = wins[i] + p, wins[j] + 1 - p
            for k, n in enumerate(ns):
                rewards[n] = wins[k] / (len(ns) - 1) if len(ns) > 1 else 0.5
        return rewards


class RulesJudgeReward(_JudgedReward):
    """The constitution's rules judged live: per completion, the mean over the rules, weighted by
    the constitution's weights, of the judge's log-odds that it follows each (asked in both orders),
    on the scale of a trained rule model's reward; or, with weights fitted to people (`cai fit
    rules`, which fits them on these very log-odds), their weighted sum. Logged as `rewards/rules/*`
    and, per rule, `rules/<id>`."""

    name = "rules"

    def __init__(self, judge: str | EngineConfig | Engine | Judge, weights: dict[str, float] | None = None, **kwargs):
        super().__init__(judge, **kwargs)
        self.rules = self.constitution.constitution.rules
        if not self.rules:
            raise CaiError(f"{self.constitution.path} has no rules for the judge to check")
        if weights is not None:
            ids = {rule.id for rule in self.rules}
            if set(weights) != ids:
                raise CaiError(f"the rule weights are for rules {', '.join(sorted(weights))} and "
                               f"{self.constitution.path} has {', '.join(sorted(ids))}: fit them with this constitution")
        self.weights = weights

    def parts(self) -> list[str]:
        return [f"rules/{rule.id}" for rule in self.rules]

    def judge_batch(self, engine: Engine, conversations: list[list[Message]], replies: list[str]) -> list[dict | None]:
        items = [(c, r, rule) for c, r in zip(conversations, replies) for rule in self.rules]
        results = judge_rules(items, engine, self.style)
        k, judged = len(self.rules), []
        for n in range(len(replies)):
            answers = results[n * k : (n + 1) * k]
            if any(isinstance(a, Failed) for a in answers):
                judged.append(None)
                continue
            log_odds = {rule.id: margin(p_x_better(js)) for rule, js in zip(self.rules, answers)}
            total = (sum(w * log_odds[rule_id] for rule_id, w in self.weights.items()) if self.weights
                     else weighted_score(log_odds, self.rules))
            judged.append({self.name: total,
                           **{f"rules/{rule_id}": x for rule_id, x in log_odds.items()}})
        return judged
