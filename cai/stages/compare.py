"""Judge policies against each other: every pair of policies' answers to a prompt, per tag.

For each prompt and tag, `principles_per_comparison` principles of that tag are drawn, the same for
every pair of policies on that prompt (so every pair faces the same questions), and the judge is
asked each one in both orders, with the same log-probability judge as `cai label`. All judgements
of the batch go to the engine as ONE call of prefills. Two identical answers are a tie: the judge
is not asked, their rows say p_first = 0.5 and tie = true, and the statistics count them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from itertools import combinations

from cai.constitution.principles import draw_distinct
from cai.constitution.schema import (
    LoadedConstitution,
    PreferenceExample,
    PreferencePrinciple,
)
from cai.core.batch import BatchResult
from cai.core.records import ComparisonRecord, PolicyAnswers, Skipped
from cai.engine.engine import Engine, Failed
from cai.stages.dialogue import Style
from cai.stages.judge import (
    ANSWER_PREFIX,
    ask_turns,
    judge_prompt,
    judge_provenance,
    option_probabilities,
)

log = logging.getLogger("cai")

ORDERS = ("AB", "BA")  # always both: one order alone would carry the judge's position bias


@dataclass
class CompareConfig:
    model: str  # the judge
    tags: list[str] = field(default_factory=lambda: ["harmless", "helpful"])
    style: Style = Style.chat
    principles_per_comparison: int = 1
    seed: int = 0

    def settings(self) -> dict:
        """What each row's provenance records of the judge's settings (its stage fingerprint holds every field)."""
        return {"tags": self.tags, "principles_per_comparison": self.principles_per_comparison, "swap": True}


@dataclass
class _Ask:
    """One judgement: two policies' answers to a prompt, under one principle, in one order."""

    record: PolicyAnswers
    policies: tuple[str, str]
    tag: str
    principle: PreferencePrinciple
    order: str

    @property
    def comparison(self) -> str:
        """The prompt, pair and tag this judgement belongs to (its principles and orders together)."""
        x, y = self.policies
        return f"{self.record.id}:{x} vs {y}:{self.tag}"

    @property
    def answers(self) -> tuple[str, str]:
        """The two answers in the order shown, (A) first."""
        x, y = (self.record.answers[p] for p in self.policies)
        return (x, y) if self.order == "AB" else (y, x)

    @property
    def tie(self) -> bool:
        first, second = self.answers
        return first.strip() == second.strip()

    def prompt(self, examples: list[PreferenceExample], style: Style) -> list | str:
        turns = ask_turns(examples, self.record.prompt, self.principle.question, *self.answers)
        return judge_prompt(turns, style, ANSWER_PREFIX)


def _asks(records: list[PolicyAnswers], by_tag: dict[str, list[PreferencePrinciple]], config: CompareConfig) -> list[_Ask]:
    asks = []
    for record in records:
        for tag, principles in by_tag.items():
            drawn = draw_distinct(principles, config.principles_per_comparison, config.seed, f"{record.id}:{tag}")
            for pair in combinations(sorted(record.answers), 2):
                asks += [_Ask(record, pair, tag, p, order) for p in drawn for order in ORDERS]
    return asks


def compare_batch(
    records: list[PolicyAnswers], engine: Engine, constitution: LoadedConstitution, config: CompareConfig
) -> BatchResult:
    """`ComparisonRecord` rows, one per prompt, pair of policies, tag, principle and order.

    A comparison (prompt, pair, tag) with any failed judgement is left out whole, as one error;
    a prompt that fewer than two policies answered is an error too.
    """
    c = constitution.constitution
    result = BatchResult()
    for record in records:
        if len(record.answers) < 2:
            result.errors.append(Skipped(id=record.id, stage="compare", reason="fewer than two policies answered"))
    asks = _asks(records, c.principles_by_tag(config.tags), config)

    probabilities: list[float | Failed] = [0.5] * len(asks)  # a tie stays 0.5: the judge is not asked
    judged = [i for i, a in enumerate(asks) if not a.tie]
    log.info("judge: %d judgements of policies (%d tied)", len(judged), len(asks) - len(judged))
    prompts = [asks[i].prompt(c.preference_examples, config.style) for i in judged]
    for i, p in zip(judged, option_probabilities(engine, prompts)):
        probabilities[i] = p

    failed = {}
    for a, p in zip(asks, probabilities):
        if isinstance(p, Failed):
            failed.setdefault(a.comparison, p.reason)
    result.errors += [Skipped(id=key, stage="compare", reason=f"judge: {r}") for key, r in failed.items()]

    provenance = judge_provenance(config, constitution)
    kept = [(a, p) for a, p in zip(asks, probabilities) if a.comparison not in failed]
    result.records = [
        ComparisonRecord(
            id=a.record.id, policies=a.policies, tag=a.tag, principle_id=a.principle.id,
            order=a.order, p_first=p, tie=a.tie, provenance=provenance,
        )
        for a, p in kept
    ]
    result.counters["comparisons"] += len({a.comparison for a, _ in kept})
    result.counters["ties"] += len({a.comparison for a, _ in kept if a.tie})
    result.counters["judgements"] += len(judged)
    return result
