"""Read prompts from the files users have: JSONL (plain or .gz), JSON, CSV or Parquet.

A row is a prompt when it has a text field (`prompt` by default), a `messages` list, or an hh-rlhf
`chosen` transcript. Its id is its own `id` field, else a hash of its content, so that the same
input always gets the same ids.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import zlib
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from cai.core.errors import CaiError
from cai.core.records import Message, PromptRow, Skipped
from cai.stages.transcript import hh_prompt, transcript_to_messages


class InputError(CaiError):
    """A problem with an input file, naming the file and line."""


def read_rows(path: str | Path) -> Iterator[tuple[int, dict | InputError]]:
    """(line number, row) pairs of a data file, whatever its format, read as a stream.

    A malformed line comes as an InputError in place of the row, so that callers can report it
    and go on; a file that cannot be read at all raises.
    """
    for number, raw in raw_rows(path):
        yield number, parse_raw(raw, path, number)


def parse_raw(raw: bytes | dict | InputError, path: str | Path, number: int) -> dict | InputError:
    """A row as `raw_rows` gave it (a JSONL line's bytes, or an already parsed row), as a dict."""
    return _parse_line(raw, Path(path), number) if isinstance(raw, bytes) else raw


def raw_rows(path: str | Path) -> Iterator[tuple[int, bytes | dict | InputError]]:
    """(line number, raw row): JSONL lines stay bytes until someone needs them, so that a resumed
    job can pass over finished rows without parsing them. Memory does not grow with the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffixes = [s.lower() for s in path.suffixes]
    gz = suffixes[-1:] == [".gz"]
    kind = ((suffixes[:-1] if gz else suffixes)[-1:] or [""])[0]
    opener = gzip.open if gz else open
    try:
        if kind == ".parquet":
            yield from enumerate(_parquet_rows(path), start=1)
        elif kind == ".csv":
            with opener(path, "rt", encoding="utf-8", newline="") as f:
                yield from enumerate(csv.DictReader(f), start=2)  # line 1 is the header
        elif kind == ".json":
            with opener(path, "rb") as f:
                yield from _json_rows(f.read(), path)
        else:
            with opener(path, "rb") as f:
                for number, line in enumerate(f, start=1):
                    if line.strip():
                        yield number, line
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    except csv.Error as e:
        raise InputError(f"{path}: not a readable CSV file ({e})") from None
    except (OSError, EOFError, zlib.error) as e:
        raise InputError(f"{path}: not a readable {'gzip ' if gz else ''}file ({e})") from None


def _json_rows(raw: bytes, path: Path) -> Iterator[tuple[int, dict | InputError]]:
    try:
        data = json.loads(_decode(raw, path))
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
    if isinstance(data, dict):  # {"data": [...]} and the like: take the only list
        lists = [v for v in data.values() if isinstance(v, list)]
        data = lists[0] if len(lists) == 1 else [data]
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of objects")
    for number, row in enumerate(data, start=1):
        yield number, row if isinstance(row, dict) else InputError(f"{path}: item {number} is not an object")


def _parquet_rows(path: Path) -> Iterator[dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            yield from batch.to_pylist()
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"{path}: not a readable Parquet file ({e})") from None


def _decode(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not UTF-8 text") from None


def _parse_line(line: bytes, path: Path, number: int) -> dict | InputError:
    try:
        row = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        return InputError(f"{path}:{number}: not UTF-8 text")
    except json.JSONDecodeError as e:
        return InputError(f"{path}:{number}: invalid JSON: {e.msg}")
    return row if isinstance(row, dict) else InputError(f"{path}:{number}: expected a JSON object")


def row_prompt(row: dict, prompt_field: str = "prompt") -> list[Message]:
    """The conversation a row asks the model to continue (ends with the user's turn)."""
    value = row.get(prompt_field)
    if value is None and "messages" in row:
        value = row["messages"]
    if value is None and isinstance(row.get("chosen"), str):
        return hh_prompt(row["chosen"])
    if isinstance(value, str):
        if "\n\nHuman:" in value or value.startswith("Human:"):
            return hh_prompt(value)
        if not value.strip():
            raise ValueError(f"empty '{prompt_field}'")
        return [Message(role="user", content=value)]
    if isinstance(value, list):
        messages = [Message.model_validate(m) for m in value]
        while messages and messages[-1].role == "assistant":
            messages.pop()  # a full conversation: the prompt is everything before the answer
        if not messages:
            raise ValueError("no user turn in 'messages'")
        return messages
    raise ValueError(f"no '{prompt_field}' text, 'messages' list or hh-rlhf 'chosen' transcript")


def row_conversation(row: dict) -> list[Message]:
    """A whole conversation (ending with the assistant's answer), for mixing into SFT sets."""
    if isinstance(row.get("messages"), list):
        messages = [Message.model_validate(m) for m in row["messages"]]
    elif isinstance(row.get("chosen"), str):
        messages = transcript_to_messages(row["chosen"])
    else:
        raise ValueError("no 'messages' list or hh-rlhf 'chosen' transcript")
    if not messages or messages[-1].role != "assistant":
        raise ValueError("conversation does not end with an assistant turn")
    return messages


def content_id(messages: list[Message]) -> str:
    blob = json.dumps([m.model_dump() for m in messages], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _problem(stage: str, line: int, reason: str | Exception, row_id: str | None = None) -> Skipped:
    if isinstance(reason, InputError):
        reason = str(reason).split(": ", 1)[-1]  # the line is a field of its own
    elif isinstance(reason, Exception):
        reason = _reason(reason)
    return Skipped(id=row_id, stage=stage, reason=reason, line=line)


def _row_id(row: dict, messages: list[Message]) -> str:
    return str(row["id"]) if row.get("id") not in (None, "") else content_id(messages)


def prompt_row(row: dict | InputError, line: int, prompt_field: str = "prompt", stage: str = "input") -> PromptRow | Skipped:
    """One input row as a prompt, or the reason it is not one."""
    if isinstance(row, InputError):
        return _problem(stage, line, row)
    try:
        prompt = row_prompt(row, prompt_field)
    except (ValueError, ValidationError) as e:
        return _problem(stage, line, e)
    return PromptRow(id=_row_id(row, prompt), prompt=prompt, line=line)


def duplicate(row_id: str, line: int | None, stage: str) -> Skipped:
    return _problem(stage, line, "duplicate id, kept the first", row_id)


def load_prompts(
    path: str | Path, prompt_field: str = "prompt", limit: int | None = None, stage: str = "input"
) -> tuple[list[PromptRow], list[Skipped]]:
    """Prompt rows, and the rows left out (bad rows, duplicate ids) with their lines and reasons."""
    rows, problems, seen = [], [], set()
    for line, row in read_rows(path):
        if limit is not None and len(rows) >= limit:
            break
        parsed = prompt_row(row, line, prompt_field, stage)
        if isinstance(parsed, PromptRow) and parsed.id in seen:
            parsed = duplicate(parsed.id, line, stage)
        if isinstance(parsed, Skipped):
            problems.append(parsed)
        else:
            seen.add(parsed.id)
            rows.append(parsed)
    return rows, problems


def load_conversations(path: str | Path, stage: str = "input") -> tuple[list[list[Message]], list[Skipped]]:
    conversations, problems = [], []
    for line, row in read_rows(path):
        try:
            if isinstance(row, InputError):
                raise row
            conversations.append(row_conversation(row))
        except (InputError, ValueError, ValidationError) as e:
            problems.append(_problem(stage, line, e))
    return conversations, problems


def _reason(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        return f"invalid message: {'.'.join(map(str, first['loc']))}: {first['msg']}"
    return str(error)


def sha256_of(path: str | Path) -> str:
    with Path(path).open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


NO_CHOICE = ("tie", "skipped")  # the labels of gold pairs without a human choice (cai.review.gold)
NO_CHOICE_REASON = "no human choice"


def _answer(value) -> str:
    """The answer in a pair field: a plain string, or the last assistant turn of messages."""
    if isinstance(value, list):
        messages = [Message.model_validate(m) for m in value]
        if messages and messages[-1].role == "assistant":
            return messages[-1].content
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValueError("expected an answer (text, or messages ending with the assistant's)")


def pair_row(row: dict | InputError, line: int, chosen_field: str = "chosen", rejected_field: str = "rejected",
             stage: str = "input") -> tuple[PromptRow, str, str] | Skipped:
    """One row as (prompt, chosen answer, rejected answer), or the reason it is not a pair.

    hh-rlhf rows hold two whole transcripts that differ only in the last Assistant turn; other rows
    hold a prompt (as `cai generate` reads it) and the two answers. A row whose `label` says people
    made no choice (a gold set's tie or skipped pair, `cai review pull`) is not a pair to measure.
    """
    try:
        if isinstance(row, InputError):
            raise row
        if row.get("label") in NO_CHOICE:
            raise ValueError(f"{NO_CHOICE_REASON} (label '{row['label']}')")
        chosen, rejected = row.get(chosen_field), row.get(rejected_field)
        if chosen is None or rejected is None:
            raise ValueError(f"no '{chosen_field}' or '{rejected_field}' field")
        if isinstance(chosen, str) and isinstance(rejected, str) and "Human:" in chosen:
            prompt = hh_prompt(chosen)
            chosen, rejected = (transcript_to_messages(t)[-1].content for t in (chosen, rejected))
        else:
            prompt = row_prompt(row)
            chosen, rejected = _answer(chosen), _answer(rejected)
    except (InputError, ValueError, ValidationError, IndexError) as e:
        return _problem(stage, line, e)
    row_id = _row_id(row, prompt + [Message(role="assistant", content=a) for a in (chosen, rejected)])
    return PromptRow(id=row_id, prompt=prompt, line=line), chosen, rejected


def load_pairs(
    path: str | Path,
    chosen_field: str = "chosen",
    rejected_field: str = "rejected",
    limit: int | None = None,
    stage: str = "input",
) -> tuple[list[tuple[PromptRow, str, str]], list[Skipped]]:
    """Answer pairs whose better one humans chose: (prompt row, chosen, rejected) and warnings."""
    pairs, problems, seen = [], [], set()
    for line, row in read_rows(path):
        if limit is not None and len(pairs) >= limit:
            break
        parsed = pair_row(row, line, chosen_field, rejected_field, stage)
        if not isinstance(parsed, Skipped) and parsed[0].id in seen:
            parsed = duplicate(parsed[0].id, line, stage)
        if isinstance(parsed, Skipped):
            problems.append(parsed)
        else:
            seen.add(parsed[0].id)
            pairs.append(parsed)
    return pairs, problems
