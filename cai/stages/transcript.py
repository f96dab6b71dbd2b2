"""The paper's plain transcript format ("\\n\\nHuman: …\\n\\nAssistant: …"), both ways."""

from __future__ import annotations

import re

from cai.core.records import Message

# Labels of the paper's transcripts, and the chat role each one plays.
LABELS = {
    "Human": "user",
    "Assistant": "assistant",
    "CritiqueRequest": "user",
    "Critique": "assistant",
    "RevisionRequest": "user",
    "Revision": "assistant",
}
_SPLIT = re.compile(r"(?:^|\n\n)(" + "|".join(LABELS) + r"):[ ]?")


def split_transcript(text: str) -> list[tuple[str, str]]:
    """Split a transcript into (label, text) segments; text before the first label is dropped."""
    parts = _SPLIT.split(text)
    segments = []
    for label, body in zip(parts[1::2], parts[2::2]):
        segments.append((label, body.strip()))
    return segments


def transcript_to_messages(text: str) -> list[Message]:
    """Human/Assistant turns of a transcript as chat messages (other labels are an error)."""
    messages = []
    for label, body in split_transcript(text):
        if label not in ("Human", "Assistant"):
            raise ValueError(f"unexpected '{label}:' in a conversation transcript")
        messages.append(Message(role=LABELS[label], content=body))
    return messages


def hh_prompt(transcript: str) -> list[Message]:
    """The conversation before the last Assistant turn of an hh-rlhf transcript."""
    messages = transcript_to_messages(transcript)
    while messages and messages[-1].role == "assistant":
        messages.pop()
    if not messages:
        raise ValueError("transcript has no Human turn")
    return messages


def messages_to_transcript(messages: list[Message]) -> str:
    """Chat messages as a transcript; a system message becomes leading plain text."""
    out = []
    for m in messages:
        if m.role == "system":
            out.append(m.content)
        else:
            out.append(f"\n\n{'Human' if m.role == 'user' else 'Assistant'}: {m.content}")
    return "".join(out)
