"""d-RLAIF (Lee et al., *RLAIF vs. RLHF*): the judge's rating of one reply, as a reward.

The judge is asked to rate the reply from 1 to 10 under a preference principle. Its rating is the
expectation of the score under its own probabilities of the score tokens 1..10, normalised over the
ten: one prefill per reply, nothing parsed. Where the judge's tokenizer has no token of its own for
"10" (most write numbers digit by digit), the token "1" stands for both 1 and 10, and a second
prefill one token longer, after "(1", splits it by the probabilities of "0" and ")": the same
prompt plus one token, which vLLM's prefix cache computes almost for free.
"""

from __future__ import annotations

import math

from cai.core.errors import CaiError
from cai.engine.engine import Engine, Failed
from cai.stages.dialogue import Style, Turn
from cai.stages.judge import judge_prompt, p_first

SCORE_PREFIX = "The rating is: ("
LOWEST, HIGHEST = 1, 10


def softmax(logprobs: list[float]) -> list[float]:
    top = max(logprobs)
    weights = [math.exp(x - top) for x in logprobs]
    total = sum(weights)
    return [w / total for w in weights]


def expected_score(probabilities: list[float]) -> float:
    """Σ s·P(s) over the scores 1..10 (the probabilities sum to 1)."""
    return sum(score * p for score, p in zip(range(LOWEST, HIGHEST + 1), probabilities))


def scaled(score: float) -> float:
    """A score in [1, 10] as a reward in [-1, 1]."""
    middle, half = (LOWEST + HIGHEST) / 2, (HIGHEST - LOWEST) / 2
    return (score - middle) / half


def _score_ids(engine: Engine) -> tuple[list[int], bool]:
    """The tokens of the scores 1..10 after SCORE_PREFIX, or those of 1..9 and True where "10" is
    no single token."""
    try:
        return engine.option_token_ids(SCORE_PREFIX, [str(s) for s in range(LOWEST, HIGHEST + 1)]), False
    except CaiError:
        return engine.option_token_ids(SCORE_PREFIX, [str(s) for s in range(LOWEST, HIGHEST)]), True


def rate(engine: Engine, dialogues: list[list[Turn]], style: Style) -> list[float | Failed]:
    """The judge's expected score (1..10) for each rating dialogue (the last turn asks for it)."""
    ids, split_ten = _score_ids(engine)
    first = engine.option_logprobs([judge_prompt(d, style, SCORE_PREFIX) for d in dialogues], ids)
    tens: list = [None] * len(dialogues)
    if split_ten:  # P(10 | "1") from "0" against ")" one token later
        ten_ids = engine.option_token_ids(SCORE_PREFIX + "1", ["0", ")"])
        ready = [i for i, f in enumerate(first) if not isinstance(f, Failed)]
        answers = engine.option_logprobs([judge_prompt(dialogues[i], style, SCORE_PREFIX + "1") for i in ready], ten_ids)
        for i, answer in zip(ready, answers):
            tens[i] = answer
    scores = []
    for logprobs, ten in zip(first, tens):
        failed = next((x for x in (logprobs, ten) if isinstance(x, Failed)), None)
        if failed:
            scores.append(failed)
            continue
        p = softmax(logprobs)
        if ten is not None:
            p_ten = p_first(ten)
            p = [p[0] * (1 - p_ten), *p[1:], p[0] * p_ten]
        scores.append(expected_score(p))
    return scores
