"""Convert published constitutions into `cai`'s YAML.

- `anthropic`: the `prompts/` folder of anthropics/ConstitutionalHarmlessnessPaper.
- `hf`: the JSON of Hugging Face's open CAI recipe ({"constitutions": …, "system_chat": …}).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from cai.constitution.schema import Constitution
from cai.core.errors import CaiError
from cai.core.records import Message
from cai.stages.transcript import LABELS, split_transcript

_MARKERS = re.compile(r"^\s*(?:" + "|".join(LABELS) + r"):\s*|\s*(?:" + "|".join(LABELS) + r"|Options):\s*$")


def clean(text: str) -> str:
    """A request without the paper's markers: '\\n\\nCritiqueRequest: X\\n\\nCritique:' -> 'X'."""
    previous = None
    while previous != text:
        previous, text = text, _MARKERS.sub("", text.strip())
    return text.strip()


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CaiError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None


def from_anthropic(folder: Path) -> dict:
    folder = Path(folder)
    instructions = folder / "CritiqueRevisionInstructions.json"
    if not instructions.is_file():
        raise CaiError(f"{instructions} not found: point at the paper repository's prompts/ folder")
    critique_revision = []
    for key, item in _read_json(instructions).items():
        prompts = item["prompt"] if isinstance(item["prompt"], list) else [item["prompt"]]
        critique_revision.append(
            {"id": key, "critique": clean(prompts[0]), "revision": clean(item["edit_request"])}
        )
    data: dict = {
        "name": "anthropic-constitutional-harmlessness",
        "description": f"Imported from {folder} (anthropics/ConstitutionalHarmlessnessPaper).",
        "few_shot": {"critique_revision": [], "preference": []},
        "critique_revision": critique_revision,
        "preference": [],
    }
    questions = folder / "RLMadisonInstructions.json"
    if questions.is_file():
        data["preference"] = [
            {"id": f"madison{i}", "question": clean(q)} for i, q in enumerate(_read_json(questions))
        ]
    examples = folder / "CritiqueRevisionFewShotPrompts.json"
    if examples.is_file():
        data["few_shot"]["critique_revision"] = [
            _critique_example(t) for t in _read_json(examples)
        ]
    judged = folder / "RLMadisonFewShotPrompts.json"
    if judged.is_file():
        data["few_shot"]["preference"] = [
            {"prompt": _messages(item["prompt"]), "better": good.strip(), "worse": bad.strip()}
            for item in _read_json(judged)
            for good in item["corrects"]
            for bad in item["incorrects"]
        ]
    return data


def _messages(transcript: str) -> list[dict]:
    return [
        {"role": LABELS[label], "content": body}
        for label, body in split_transcript(transcript)
        if label in ("Human", "Assistant") and body
    ]


def _critique_example(transcript: str) -> dict:
    """A few-shot transcript: conversation, answer, then CritiqueRequest…Revision steps."""
    segments = [(label, body) for label, body in split_transcript(transcript) if body]
    first_request = next(i for i, (label, _) in enumerate(segments) if label == "CritiqueRequest")
    conversation, rest = segments[:first_request], segments[first_request:]
    if not conversation or conversation[-1][0] != "Assistant":
        raise CaiError("few-shot transcript has no Assistant answer before its CritiqueRequest")
    steps = [
        {
            "critique_request": rest[i][1],
            "critique": rest[i + 1][1],
            "revision_request": rest[i + 2][1],
            "revision": rest[i + 3][1],
        }
        for i in range(0, len(rest) - 3, 4)
    ]
    return {
        "prompt": [{"role": LABELS[label], "content": body} for label, body in conversation[:-1]],
        "response": conversation[-1][1],
        "steps": steps,
    }


def from_hf(file: Path) -> dict:
    data = _read_json(Path(file))
    if not isinstance(data, dict) or "constitutions" not in data:
        raise CaiError(f"{file}: expected an object with a 'constitutions' list")
    examples = []
    for chat in data.get("system_chat", []):
        messages = [Message.model_validate(m).model_dump() for m in chat]
        n_steps = (len(messages) - 2) // 4
        conversation, rest = messages[: len(messages) - 4 * n_steps], messages[len(messages) - 4 * n_steps :]
        examples.append(
            {
                "prompt": conversation[:-1],
                "response": conversation[-1]["content"],
                "steps": [
                    {
                        "critique_request": rest[i]["content"],
                        "critique": rest[i + 1]["content"],
                        "revision_request": rest[i + 2]["content"],
                        "revision": rest[i + 3]["content"],
                    }
                    for i in range(0, len(rest), 4)
                ],
            }
        )
    return {
        "name": "hf-constitution",
        "description": f"Imported from {file} (Hugging Face CAI recipe format).",
        "few_shot": {"critique_revision": examples, "preference": []},
        "critique_revision": [
            {"id": f"hf{i}", "critique": c["critic"].strip(), "revision": c["revision"].strip()}
            for i, c in enumerate(data["constitutions"])
        ],
        "preference": [],
    }


def write_constitution(data: dict, out: Path) -> None:
    Constitution.model_validate(data)  # fail here, not at the user's next check
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100))
