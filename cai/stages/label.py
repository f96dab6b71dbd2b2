"""Stage 2 of RL-CAI: the AI judge labels every pair of answers to a prompt.

For each pair, P principles are drawn; for each principle the judge is asked in both orders (AB
and BA) unless swapping is off. All judgements of the batch go to the engine as ONE call of
prefills (plus one generation call first with chain-of-thought).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import combinations

from cai.constitution.principles import draw_distinct, rng_for
from cai.constitution.schema import LoadedConstitution, PreferencePrinciple
from cai.core.batch import BatchResult
from cai.core.records import (
    Judgement,
    Message,
    PreferenceRecord,
    Provenance,
    SampleRecord,
    Skipped,
)
from cai.engine.engine import Engine, Failed, Request, SamplingConfig
from cai.metrics.calibration import Calibration
from cai.stages.dialogue import Style
from cai.stages.generate import stop_strings
from cai.stages.judge import (
    ANSWER_PREFIX,
    COT_PREFIX,
    OPTIONS,
    ask_turns,
    judge_prompt,
    judge_provenance,
    margin,
    option_probabilities,
    p_x_better,
)
from cai.stages.quality import DEFAULT_DROP, flagged_pair, pair_flags


@dataclass
class LabelConfig:
    model: str  # the judge
    style: Style = Style.chat
    principles_per_pair: int = 1
    swap: bool = True
    cot: bool = False
    cot_bounds: tuple[float, float] = (0.4, 0.6)  # the paper's clamp for over-confident CoT labels
    cot_max_tokens: int = 256
    seed: int = 0
    drop_flags: tuple[str, ...] = DEFAULT_DROP  # pairs with an answer flagged so are skipped...
    keep_flagged: bool = False  # ...unless this is set
    calibration: Calibration | None = None  # applied to every judgement (cai label --calibration)...
    calibration_sha256: str | None = None  # ...whose file this is

    def settings(self) -> dict:
        """What each row's provenance records of the judge's settings (its stage fingerprint holds every field)."""
        keys = ("principles_per_pair", "swap", "cot", "cot_bounds", "cot_max_tokens", "drop_flags", "keep_flagged")
        calibrated = {"calibration_sha256": self.calibration_sha256} if self.calibration else {}
        return {**{k: getattr(self, k) for k in keys}, **calibrated}


@dataclass
class _Pair:
    sample: SampleRecord
    i: int
    j: int

    @property
    def id(self) -> str:
        return f"{self.sample.id}:{self.i}-{self.j}"


@dataclass
class _Ask:
    pair: int
    principle: PreferencePrinciple
    order: str
    turns: list


def pairs_of(samples: list[SampleRecord], config: LabelConfig) -> tuple[list[_Pair], Counter]:
    """Every pair of different, unflagged answers to a prompt (K·(K−1)/2), and what was dropped:
    pairs of identical answers, and pairs with an answer flagged (unless `keep_flagged`)."""
    pairs, dropped = [], Counter()
    for s in samples:
        for i, j in combinations(range(len(s.responses)), 2):
            flags = [] if config.keep_flagged else flagged_pair(s, i, j, config.drop_flags)
            if s.responses[i].strip() == s.responses[j].strip():
                dropped["identical_pairs_dropped"] += 1
            elif flags:
                dropped["flagged_pairs_dropped"] += 1
                dropped.update(f"flagged_pairs_dropped: {f}" for f in flags)
            else:
                pairs.append(_Pair(s, i, j))
    return pairs, dropped


def _asks(pairs: list[_Pair], constitution: LoadedConstitution, config: LabelConfig) -> list[_Ask]:
    c = constitution.constitution
    asks = []
    for n, pair in enumerate(pairs):
        x, y = pair.sample.responses[pair.i], pair.sample.responses[pair.j]
        for principle in draw_distinct(c.preference, config.principles_per_pair, config.seed, pair.id):
            if config.swap:
                orders = ["AB", "BA"]
            else:  # one order, drawn fairly, so that position bias does not favour x
                orders = [rng_for(config.seed, pair.id, principle.id, "order").choice(["AB", "BA"])]
            for order in orders:
                first, second = (x, y) if order == "AB" else (y, x)
                turns = ask_turns(c.preference_examples, pair.sample.prompt, principle.question, first, second)
                asks.append(_Ask(n, principle, order, turns))
    return asks


def _reasoning(asks: list[_Ask], pairs: list[_Pair], engine: Engine, config: LabelConfig) -> list:
    """Chain of thought: the judge's reasoning for each ask (one generation call), or Failed."""
    engine.step(f"judge: reasoning for {len(asks)} judgements")
    sampling = SamplingConfig(temperature=0.0, max_tokens=config.cot_max_tokens, seed=config.seed)
    stops = ("The answer is",) + stop_strings(config.style)
    outs = engine.generate(
        [
            Request(judge_prompt(a.turns, config.style, COT_PREFIX),
                    f"cot:{pairs[a.pair].id}:{a.principle.id}:{a.order}", stops)
            for a in asks
        ],
        sampling,
    )
    return [o if isinstance(o, Failed) else o.text for o in outs]


def _judgements(asks: list[_Ask], reasoning: list, engine: Engine, config: LabelConfig) -> list[Judgement | Failed]:
    """Every ask's label from the option-token probabilities: ONE call of prefills."""
    engine.step(f"judge: {len(asks)} judgements")
    ready = [i for i, r in enumerate(reasoning) if not isinstance(r, Failed)]
    prompts = [
        judge_prompt(asks[i].turns, config.style,
                     f"{COT_PREFIX} {reasoning[i]}\n\n{ANSWER_PREFIX}" if config.cot else ANSWER_PREFIX)
        for i in ready
    ]
    judgements: list = list(reasoning)  # a Failed reasoning stays Failed; the rest is filled in
    for i, p in zip(ready, option_probabilities(engine, prompts)):
        a = asks[i]
        judgements[i] = p if isinstance(p, Failed) else Judgement(
            principle_id=a.principle.id, order=a.order, p_first=p, reasoning=reasoning[i]
        )
    return judgements


def _preference(pair: _Pair, judgements: list[Judgement], config: LabelConfig, provenance: Provenance) -> PreferenceRecord:
    """The pair as chosen/rejected by the debiased, ensembled probability. With a calibration, that
    is the calibrated one, and the judge's own stays beside it (for the same `chosen`)."""
    bounds = config.cot_bounds if config.cot else None
    p_x = p_x_better(judgements, bounds, config.calibration)
    x, y = pair.sample.responses[pair.i], pair.sample.responses[pair.j]
    if p_x >= 0.5:
        chosen, rejected, p, indices = x, y, p_x, (pair.i, pair.j)
    else:
        chosen, rejected, p, indices = y, x, 1 - p_x, (pair.j, pair.i)
    raw = {}
    if config.calibration:
        p_raw = p_x_better(judgements, bounds) if p_x >= 0.5 else 1 - p_x_better(judgements, bounds)
        raw = {"p_chosen_raw": p_raw, "margin_raw": margin(p_raw)}
    return PreferenceRecord(
        id=pair.id,
        prompt=pair.sample.prompt,
        chosen=[Message(role="assistant", content=chosen)],
        rejected=[Message(role="assistant", content=rejected)],
        p_chosen=p,
        margin=margin(p),
        judgements=judgements,
        pair=indices,
        flags=pair_flags(pair.sample, pair.i, pair.j),
        provenance=provenance,
        **raw,
    )


def label_batch(
    samples: list[SampleRecord], engine: Engine, constitution: LoadedConstitution, config: LabelConfig
) -> BatchResult:
    pairs, dropped = pairs_of(samples, config)
    asks = _asks(pairs, constitution, config)
    if asks and config.cot:  # a judge server without log-probabilities is refused before any reasoning
        engine.option_token_ids(ANSWER_PREFIX, OPTIONS)
    reasoning = _reasoning(asks, pairs, engine, config) if config.cot else [None] * len(asks)
    by_pair = defaultdict(list)
    for a, judgement in zip(asks, _judgements(asks, reasoning, engine, config)):
        by_pair[a.pair].append(judgement)

    provenance = judge_provenance(config, constitution, config.calibration_sha256)
    result = BatchResult(counters=dropped)
    result.counters["pairs"] += len(pairs) + sum(v for k, v in dropped.items() if ":" not in k)
    for n, pair in enumerate(pairs):
        failed = [j for j in by_pair[n] if isinstance(j, Failed)]
        if failed:
            result.errors.append(Skipped(id=pair.id, stage="label", reason=f"judge: {failed[0].reason}"))
        else:
            result.records.append(_preference(pair, by_pair[n], config, provenance))
            result.counters.update(f"principle: {j.principle_id}" for j in by_pair[n])
    return result
