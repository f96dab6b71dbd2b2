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


class ResponseRecord(BaseModel):
    """A row of `responses.jsonl`: the model's first answer to a prompt."""

    id: str
    prompt: list[Message]
    response: str
    provenance: Provenance


class Step(BaseModel):
    principle_id: str
    critique: str
    revision: str


class RevisionRecord(BaseModel):
    """A row of `revisions.jsonl`: the answer, then each round's critique and revision."""

    id: str
    prompt: list[Message]
    initial_response: str
    steps: list[Step]
    final_response: str
    stopped: str | None = Field(None, description="why rounds ended early, e.g. 'context_length'")
    provenance: Provenance


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


class SampleRecord(BaseModel):
    """A row of `samples.jsonl`: K answers to one prompt, for the AI judge to compare."""

    id: str
    prompt: list[Message]
    responses: list[str]
    provenance: Provenance


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
    judgements: list[Judgement]
    pair: tuple[int, int] = Field(description="indices of chosen and rejected in the sample's responses")
    provenance: Provenance
    source: Literal["ai", "human"] = Field("ai", description="who labelled the pair: the AI judge or people")


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
