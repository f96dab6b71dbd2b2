"""Build model prompts from turns, in one of two styles.

A dialogue is a list of (label, text) turns using the paper's labels (Human, Assistant,
CritiqueRequest, Critique, RevisionRequest, Revision). The `chat` style renders them as chat
messages for the model's chat template (requests are user turns, answers assistant turns), the
`transcript` style as the paper's plain text for base models.
"""

from __future__ import annotations

from enum import Enum

from cai.constitution.schema import CritiqueExample
from cai.core.records import Message, Step
from cai.stages.transcript import LABELS

Turn = tuple[str, str]


class Style(str, Enum):
    chat = "chat"
    transcript = "transcript"


# In transcript style, generation stops where the model starts a new labelled turn.
TRANSCRIPT_STOPS = [f"\n\n{label}:" for label in LABELS]


def conversation_turns(messages: list[Message]) -> list[Turn]:
    return [(_LABEL_OF_ROLE[m.role], m.content) for m in messages]


_LABEL_OF_ROLE = {"system": "System", "user": "Human", "assistant": "Assistant"}


def step_turns(steps: list[Step], requests: dict[str, tuple[str, str]]) -> list[Turn]:
    """Turns of finished rounds; `requests` maps a principle id to its (critique, revision) texts."""
    turns = []
    for step in steps:
        critique_request, revision_request = requests[step.principle_id]
        turns += [
            ("CritiqueRequest", critique_request),
            ("Critique", step.critique),
            ("RevisionRequest", revision_request),
            ("Revision", step.revision),
        ]
    return turns


def example_turns(examples: list[CritiqueExample]) -> list[Turn]:
    """Few-shot critique/revision examples, one after another."""
    turns = []
    for ex in examples:
        turns += conversation_turns(ex.prompt) + [("Assistant", ex.response)]
        for s in ex.steps:
            turns += [
                ("CritiqueRequest", s.critique_request),
                ("Critique", s.critique),
                ("RevisionRequest", s.revision_request),
                ("Revision", s.revision),
            ]
    return turns


def render(turns: list[Turn], style: Style, answer_label: str) -> list[Message] | str:
    """The prompt that asks for the next `answer_label` turn (system turns go first)."""
    system = [text for label, text in turns if label == "System"]
    turns = [t for t in turns if t[0] != "System"]
    if style is Style.chat:
        messages = [Message(role="system", content="\n\n".join(system))] if system else []
        return messages + [Message(role=LABELS[label], content=text) for label, text in turns]
    head = "\n\n".join(system)
    return head + "".join(f"\n\n{label}: {text}" for label, text in turns) + f"\n\n{answer_label}:"
