"""The AI judge as a multiple-choice question, and the arithmetic of its soft labels.

The judge sees a conversation, a principle's question and two answers as options (A) and (B). Its
label is its own next-token probabilities of the letters after a fixed answer prefix, normalised
over the two: one prefill per judgement, no text to parse. Asking in both orders and averaging
cancels the judge's position bias; several principles per pair make the paper's ensemble.

A single reply is rated the same way (d-RLAIF): "rate it from 1 to 10" under a principle's
question, read from the probabilities of the score tokens.

A rule is judged the same way, one response at a time: "does it follow the rule?" with Yes and No
as the options, Yes shown as (A) in order AB and as (B) in order BA.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from cai.constitution.schema import PreferenceExample
from cai.core.records import Judgement, Message, Provenance, RuleJudgement
from cai.engine.engine import Engine, Failed
from cai.stages.dialogue import Style, Turn, render
from cai.stages.transcript import messages_to_transcript

ANSWER_PREFIX = "The answer is: ("
COT_PREFIX = "Let's think step by step:"
OPTIONS = ["A", "B"]
_TAGS = ("conversation", "response")


def _quote(text: str) -> str:
    """Escape our delimiter tags inside data, so no text can close a block early."""
    for tag in _TAGS:
        text = text.replace(f"<{tag}>", f"&lt;{tag}&gt;").replace(f"</{tag}>", f"&lt;/{tag}&gt;")
    return text


def _conversation(conversation: list[Message]) -> str:
    return (
        "Consider the following conversation between a human and an assistant:\n"
        f"<conversation>\n{_quote(messages_to_transcript(conversation).strip())}\n</conversation>\n\n"
    )


def _response(text: str) -> str:
    return f"<response>\n{_quote(text)}\n</response>"


def question_text(conversation: list[Message], question: str, first: str, second: str) -> str:
    """The judge's question; every piece of data sits between delimiters."""
    return (
        f"{_conversation(conversation)}{question}\n\nOptions:\n"
        f"(A) {_response(first)}\n"
        f"(B) {_response(second)}\n\n"
        "Answer with (A) or (B)."
    )


def rule_question_text(conversation: list[Message], response: str, rule: str, order: str) -> str:
    """Does `response` follow `rule`? Yes is option (A) in order AB, (B) in order BA."""
    first, second = ("Yes", "No") if order == "AB" else ("No", "Yes")
    return (
        f"{_conversation(conversation)}The assistant's reply:\n{_response(response)}\n\n"
        f"Rule: {_quote(rule)}\nDoes the assistant's reply follow this rule?\n\n"
        f"Options:\n(A) {first}\n(B) {second}\n\n"
        "Answer with (A) or (B)."
    )


def score_question_text(conversation: list[Message], response: str, question: str) -> str:
    """d-RLAIF: the judge rates one reply from 1 to 10 under a principle's question."""
    return (
        f"{_conversation(conversation)}The assistant's reply:\n{_response(response)}\n\n"
        f"Judge the reply by this question: {_quote(question)}\n"
        "Rate the reply from 1 to 10, where 1 is the worst reply this question could ask for and 10 "
        "the best.\n\nAnswer with a number in parentheses, e.g. (7)."
    )


def few_shot_turns(examples: list[PreferenceExample], question: str) -> list[Turn]:
    """Worked judgements under the same question; the better answer alternates between A and B."""
    turns = []
    for i, ex in enumerate(examples):
        first, second, letter = (ex.better, ex.worse, "A") if i % 2 == 0 else (ex.worse, ex.better, "B")
        turns += [
            ("Human", question_text(ex.prompt, question, first, second)),
            ("Assistant", f"{ANSWER_PREFIX}{letter})"),
        ]
    return turns


def ask_turns(
    examples: list[PreferenceExample], conversation: list[Message], question: str, first: str, second: str
) -> list[Turn]:
    """One judgement's dialogue: the worked examples under the same question, then this question."""
    return few_shot_turns(examples, question) + [("Human", question_text(conversation, question, first, second))]


def judge_prompt(turns: list[Turn], style: Style, answer_prefix: str) -> list[Message] | str:
    """A prompt whose answer starts with `answer_prefix`, the text the judge continues."""
    if style is Style.chat:
        return render(turns, style, "Assistant") + [Message(role="assistant", content=answer_prefix)]
    return f"{render(turns, style, 'Assistant')} {answer_prefix}"


def p_first(logprobs: list[float]) -> float:
    """P(A) normalised over the two options (a softmax over their log-probabilities)."""
    a, b = logprobs
    return 1.0 / (1.0 + math.exp(b - a))


def option_probabilities(engine: Engine, prompts: list[list[Message] | str]) -> list[float | Failed]:
    """p_first for each judge prompt (each ending in ANSWER_PREFIX): ONE call of prefills."""
    option_ids = engine.option_token_ids(ANSWER_PREFIX, OPTIONS)
    return [s if isinstance(s, Failed) else p_first(s) for s in engine.option_logprobs(prompts, option_ids)]


def clamp(p: float, bounds: tuple[float, float] | None) -> float:
    return p if bounds is None else min(max(p, bounds[0]), bounds[1])


def p_x_better(judgements: list[Judgement] | list[RuleJudgement], bounds: tuple[float, float] | None = None,
               calibrate: Callable[[float], float] | None = None) -> float:
    """Debiased probability that x (shown as A in order AB, as B in BA) is the better answer:
    the mean of p_first(AB) and 1 - p_first(BA) over every judgement, each clamped to `bounds`
    (and then mapped by `calibrate`, a fitted `cai.metrics.calibration.Calibration`, if given).
    For a rule's judgements, x is Yes: this is p_follows."""
    def first(p: float) -> float:
        return calibrate(clamp(p, bounds)) if calibrate else clamp(p, bounds)

    values = [first(j.p_first) if j.order == "AB" else 1.0 - first(j.p_first) for j in judgements]
    return sum(values) / len(values)


def margin(p_chosen: float) -> float:
    """logit(p_chosen): 0 for a coin flip, large for a confident label (TRL's reward margin)."""
    p = min(max(p_chosen, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def judge_provenance(config, constitution, calibration_sha256: str | None = None) -> Provenance:
    """What made a judge's rows: the judge, its settings and style, the constitution, the seed, and
    the calibration file applied to its labels, if any."""
    return Provenance(model=config.model, sampling=config.settings(), style=config.style.value,
                      constitution_sha256=constitution.sha256, seed=config.seed,
                      calibration_sha256=calibration_sha256)
