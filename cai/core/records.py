"""Pydantic models of every row that `cai` reads or writes, so that each file has one schema."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


class PromptRow(BaseModel):
    """One input prompt: a conversation that ends with the user's turn."""

    id: str
    prompt: list[Message]
    line: int = Field(description="1-based line (or row) number in the input file")


class Provenance(BaseModel):
    """What produced a row: enough to reproduce it or to tell two runs apart."""

    model: str
    sampling: dict
    style: str
    constitution_sha256: str | None = None
    seed: int | None = None
    calibration_sha256: str | None = Field(None, description="the judge's calibration file (cai label --calibration)")


class ResponseRecord(BaseModel):
    """A row of `responses.jsonl`: the model's first answer to a prompt."""

    id: str
    prompt: list[Message]
    response: str
    provenance: Provenance
    finish_reason: str | None = Field(None, description="why generation stopped ('stop', 'length'); None if unknown")
    flags: list[str] = Field([], description="the response's data-quality flags (cai.stages.quality.FLAGS)")


class Step(BaseModel):
    """One round: the critique against a principle, then the revision it led to.

    The finish reasons and flags (here and on the records) default to None and [], so that files
    written before they existed still load, as unflagged.
    """

    principle_id: str
    critique: str
    revision: str
    critique_finish_reason: str | None = Field(None, description="why the critique's generation stopped")
    critique_flags: list[str] = Field([], description="the critique's data-quality flags (never `meta`)")
    revision_finish_reason: str | None = Field(None, description="why the revision's generation stopped")
    revision_flags: list[str] = Field([], description="the revision's data-quality flags")


class RevisionRecord(BaseModel):
    """A row of `revisions.jsonl`: the answer, then each round's critique and revision."""

    id: str
    prompt: list[Message]
    initial_response: str
    steps: list[Step]
    final_response: str
    stopped: str | None = Field(None, description="why rounds ended early, e.g. 'context_length'")
    provenance: Provenance
    flags: list[str] = Field([], description="the final revision's flags (those of the last step)")


class Skipped(BaseModel):
    """An input row or request left out, with the reason, so that nothing disappears silently."""

    id: str | None
    stage: str
    reason: str
    line: int | None = None


class SftRow(BaseModel):
    """A row of `sft.jsonl`: TRL's conversational format, plus where the answer came from."""

    messages: list[Message]
    source: Literal["cai", "mix"] = "cai"
    id: str | None = None
    round: int | None = None
    principle_ids: list[str] = []
    constitution_sha256: str | None = None
    model: str | None = None
    flags: list[str] = Field([], description="the revision's flags, when flagged rows were kept")


class SampleRecord(BaseModel):
    """A row of `samples.jsonl`: K answers to one prompt, for the AI judge to compare."""

    id: str
    prompt: list[Message]
    responses: list[str]
    provenance: Provenance
    finish_reasons: list[str | None] = Field([], description="why each answer's generation stopped")
    response_flags: list[list[str]] = Field([], description="each answer's data-quality flags")
    flags: list[str] = Field([], description="every flag that any answer carries")


class Judgement(BaseModel):
    """One question to the judge: which of two answers, shown in `order`, is better."""

    principle_id: str
    order: Literal["AB", "BA"]
    p_first: float = Field(description="the judge's probability for the answer it saw as (A)")
    reasoning: str | None = None


class PreferenceRecord(BaseModel):
    """A row of `preferences.jsonl`, in TRL's conversational preference format."""

    id: str
    prompt: list[Message]
    chosen: list[Message]
    rejected: list[Message]
    p_chosen: float = Field(description="debiased probability that `chosen` is better (>= 0.5)")
    margin: float = Field(description="logit(p_chosen), for TRL RewardTrainer's margin")
    p_chosen_raw: float | None = Field(None, description="with a calibration: the judge's own p for `chosen`, before it")
    margin_raw: float | None = Field(None, description="with a calibration: logit(p_chosen_raw)")
    judgements: list[Judgement]
    pair: tuple[int, int] = Field(description="indices of chosen and rejected in the sample's responses")
    provenance: Provenance
    flags: list[str] = Field([], description="every flag that either answer carries")
    source: Literal["ai", "human"] = Field("ai", description="who labelled the pair: the AI judge or people")


class PolicyAnswers(BaseModel):
    """One prompt and every policy's answer to it (policy name → text), for the judge to compare."""

    id: str
    prompt: list[Message]
    answers: dict[str, str]


class ComparisonRecord(BaseModel):
    """A row of `comparisons.jsonl`: one judgement of two policies' answers to one prompt, under
    one principle of one tag, in one order (`policies[0]` is shown as (A) in order AB)."""

    id: str = Field(description="the prompt's id")
    policies: tuple[str, str]
    tag: str
    principle_id: str
    order: Literal["AB", "BA"]
    p_first: float = Field(description="the judge's probability for the answer it saw as (A)")
    tie: bool = Field(description="identical answers: the judge is not asked, p_first = 0.5")
    provenance: Provenance


class RuleJudgement(BaseModel):
    """One question to the judge: does the response follow the rule? Options Yes and No, in `order`."""

    rule_id: str
    order: Literal["AB", "BA"] = Field(description="AB: (A) Yes, (B) No; BA: (A) No, (B) Yes")
    p_first: float = Field(description="the judge's probability for the option it saw as (A)")


class RuleScoreRecord(BaseModel):
    """A row of `rule_scores.jsonl`: one response judged against every rule of the constitution."""

    id: str = Field(description="the id of the input row (prompt) the response answers")
    response_index: int = Field(description="which of the row's responses (0 for responses and revisions)")
    prompt: list[Message]
    response: str
    scores: dict[str, float] = Field(description="rule id -> p_follows, debiased over both orders")
    judgements: list[RuleJudgement]
    score: float = Field(description="the mean of `scores` weighted by the rules' weights")
    provenance: Provenance


class RuleRow(BaseModel):
    """A row of the rule classifier's data set (`cai export rules`): one response and one rule."""

    prompt: list[Message]
    completion: list[Message]
    rule_id: str
    rule: str
    weight: float = 1.0
    label: float = Field(description="the judge's p_follows: a soft label in [0, 1]")
    id: str | None = None
    response_index: int | None = None


class RedTeamSlot(BaseModel):
    """One red-team prompt to write: its index and the seed prompts drawn to show for it."""

    index: int
    seed_ids: list[str]
    seed_prompts: list[str]

    @property
    def id(self) -> str:
        return f"redteam-{self.index}"


class RedTeamPrompt(BaseModel):
    """A row of `prompts.jsonl` from `cai redteam expand`: a new red-team prompt, and the seeds shown."""

    id: str
    prompt: str = Field(description="the text; `cai generate` and `cai sample` read it as the user's turn")
    seed_ids: list[str] = Field(description="ids of the seed prompts in the few-shot prompt, in order")
    provenance: Provenance
