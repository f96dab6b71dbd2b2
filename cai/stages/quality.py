"""Data-quality flags on generated texts: cut off, looping, talking about the task, blank, or a
revision that copies its critique or changes nothing.

Training sets are judged by what slips through, so every text the stages keep gets a list of flags
from a fixed vocabulary, computed here by plain string code (no model calls; well under a millisecond for an answer):

- `truncated`: generation stopped at the token limit (`finish_reason == "length"`).
- `repetition`: the text loops: words that repeat an earlier word n-gram make up a large share of
  it (see `repeated_share`).
- `meta`: a text that should be a reply to the human (a response or a revision, not a critique)
  talks about the exercise instead: "the assistant's last reply", "the human's request", "revised
  response", a "Critique:" label… (see `META_PHRASES`).
- `empty`: nothing but whitespace.
- `copies_critique`: a revision whose words mostly come from the critique it answers: the share of
  its words inside a word n-gram that the critique also holds (see `copied_share`) reaches a setting.
- `unchanged`: a revision (nearly) equal to the text it revises (the answer, or the last round's
  revision): the similarity of their word sequences (see `similarity`) reaches a setting.

The exports leave flagged rows out (`cai.exports.filters`); the records keep the flags so a reader can see why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Literal

from cai.core.errors import CaiError
from cai.core.records import RevisionRecord, SampleRecord

FLAGS = ("truncated", "repetition", "meta", "empty", "copies_critique", "unchanged")
DEFAULT_DROP = FLAGS  # the exports leave out a row that carries any flag, unless told otherwise

Kind = Literal["response", "critique", "revision"]
KINDS = ("response", "critique", "revision")
_REPLIES = ("response", "revision")  # kinds that answer the human, so `meta` applies to them

# Phrases that a reply to the human has no reason to use, matched case-insensitively on word
# boundaries. They come from the constitution's critique/revision requests (constitution/),
# the few-shot critiques (prompts/critique_revision_examples.yaml) and the paper's requests
# ("Identify specific ways in which the assistant's last response is harmful…", "Please rewrite
# the assistant response…"). Each is specific enough to be safe in a real answer: plain "the
# critique" is not here (a real answer may discuss "the Critique of Pure Reason"), nor "here is a
# rewrite" (the human may have asked for a rewrite of their own text), nor "the human's" alone
# ("the human's immune system").
META_PHRASES = (
    # The assistant in the third person, as the critique requests name it.
    "the assistant's last reply",
    "the assistant's reply",
    "the assistant's last response",
    "the assistant's response",
    "the assistant response",
    "the assistant's answer",
    "the assistant's previous",
    # The human in the third person.
    "the human's request",
    "the human's question",
    "the human's message",
    "the human asked",
    "the human is asking",
    # Echoes of the revision requests, and the rewrite talking about itself.
    "rewrite the reply",
    "rewrite the assistant",
    "rewrite of the reply",
    "rewrite of the response",
    "revised reply",
    "revised response",
    "rewritten reply",
    "rewritten response",
    "the reply above",
    "the response above",
    # The critique as a thing the text answers to, and the paper's turn names.
    "the critique above",
    "the critique points out",
    "address the critique",
    "addresses the critique",
    "addressing the critique",
    "based on the critique",
    "following the critique",
    "in light of the critique",
    "critique request",
    "critiquerequest",
    "revision request",
    "revisionrequest",
)
# A line that opens with one of the paper's labels for the exercise's own turns, e.g. "Revision: …".
_LABEL_LINE = re.compile(
    r"^\s*(?:critique|revision|critiquerequest|revisionrequest)\s*:", re.MULTILINE | re.IGNORECASE
)
_WORD = re.compile(r"\w+")


def _phrase_pattern(phrases: Iterable[str]) -> re.Pattern:
    """One pattern for all the phrases, each matched as whole words."""
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(p) for p in phrases) + r")(?!\w)")


_META = _phrase_pattern(META_PHRASES)


@dataclass
class QualityConfig:
    repetition_ngram: int = field(
        default=4, metadata={"help": "n of the word n-grams whose repeats count as repetition"}
    )
    # 0.4: a sentence said twice gives 0.5; among the 1,462 assistant turns of the 300 hh-rlhf rows
    # in tests/data, the highest share (4-grams) is 0.32.
    repetition_share: float = field(
        default=0.4,
        metadata={"help": "flag `repetition` when words repeating an earlier n-gram are at least this "
                          "share of the text's words (0 to 1)"},
    )
    # 0.5: "mostly the critique's". In a `cai demo --limit 8 --rounds 2 --max-tokens 64` run of the
    # default model, the 16 revisions scored 0.71-1.0 where they restate the critique, 0.0-0.11 otherwise.
    copies_critique_share: float = field(
        default=0.5,
        metadata={"help": "flag a revision `copies_critique` when words inside a word 4-gram the critique also "
                          "holds are at least this share of its words (0 to 1)"},
    )
    # In the same run, the 3 revisions that repeat the last one score 1.0; the others at most 0.58.
    unchanged_similarity: float = field(
        default=0.95,
        metadata={"help": "flag a revision `unchanged` when the similarity of its words to those of the text it "
                          "revises (difflib's ratio, 0 to 1) is at least this"},
    )
    extra_meta_phrases: list[str] = field(
        default_factory=list,
        metadata={"help": "phrases that also mark a response or revision `meta`, besides the built-in "
                          "ones (case-insensitive, whole words)"},
    )

    def __post_init__(self) -> None:
        if self.repetition_ngram < 1:
            raise CaiError("the repetition n-gram size must be at least 1")
        if not 0 < self.repetition_share <= 1:
            raise CaiError("the repetition share must be above 0 and at most 1")
        if not 0 < self.copies_critique_share <= 1:
            raise CaiError("the copies-critique share must be above 0 and at most 1")
        if not 0 < self.unchanged_similarity <= 1:
            raise CaiError("the unchanged similarity must be above 0 and at most 1")


def repeated_share(text: str, n: int) -> float:
    """The share of the text's words that lie inside a repeat of an earlier word n-gram.

    Words are runs of letters and digits, lower-cased (punctuation and case do not count). Going
    left to right, an n-gram (n consecutive words) that already started at an earlier position is a
    repeat, and its n words are covered; the share is covered words / all words. A sentence said
    twice gives about 0.5, said five times about 0.8; a normal answer that uses a four-word phrase
    twice among sixty words gives 4/60. This is the "duplicate n-gram fraction" of the Gopher
    filters (Rae et al. 2021), counted in words. Texts with fewer than n words give 0.
    """
    words = _WORD.findall(text.lower())
    seen: set[tuple[str, ...]] = set()
    covered = [False] * len(words)
    for start in range(len(words) - n + 1):
        gram = tuple(words[start : start + n])
        if gram in seen:
            covered[start : start + n] = [True] * n
        else:
            seen.add(gram)
    return sum(covered) / len(words) if words else 0.0


COPY_NGRAM = 4  # n of the word n-grams that `copied_share` looks for in the critique


def copied_share(text: str, source: str, n: int = COPY_NGRAM) -> float:
    """The share of the text's words that lie inside a word n-gram the source also holds.

    Words as in `repeated_share`. A revision that restates its critique gives nearly 1; one that
    shares a four-word phrase with it among sixty words, 4/60. Texts with fewer than n words give 0.
    """
    words, known = _WORD.findall(text.lower()), _WORD.findall(source.lower())
    grams = {tuple(known[i : i + n]) for i in range(len(known) - n + 1)}
    covered = [False] * len(words)
    for start in range(len(words) - n + 1):
        if tuple(words[start : start + n]) in grams:
            covered[start : start + n] = [True] * n
    return sum(covered) / len(words) if words else 0.0


def similarity(text: str, other: str) -> float:
    """How alike two texts' word sequences are: difflib's ratio, 2·matched words / all words, in
    [0, 1]; 1 for the same words (case and punctuation aside), 1 for two blank texts."""
    a, b = _WORD.findall(text.lower()), _WORD.findall(other.lower())
    return SequenceMatcher(None, a, b, autojunk=False).ratio() if a or b else 1.0


def is_meta(text: str, extra_phrases: Iterable[str] = ()) -> bool:
    """Whether the text uses one of `META_PHRASES` or `extra_phrases`, or a line opens with a label."""
    flat = _normalise(text)
    extra = [_normalise(p) for p in extra_phrases if p.strip()]
    return bool(
        _LABEL_LINE.search(text) or _META.search(flat) or (extra and _phrase_pattern(extra).search(flat))
    )


def _normalise(text: str) -> str:
    """Lower case, straight apostrophes, one space for any run of whitespace (line breaks too)."""
    return " ".join(text.lower().replace("\u2019", "'").replace("\u2018", "'").split())


def text_flags(text: str, finish_reason: str | None, config: QualityConfig, kind: Kind,
               critique: str | None = None, revised: str | None = None) -> list[str]:
    """The flags of one generated text, in the order of `FLAGS`.

    `finish_reason` is the engine's (`Generation.finish_reason`; None when unknown); `kind` says
    what the text is: `meta` applies to responses and revisions, not to critiques, whose job is to
    talk about the reply. A revision's `critique` (the one it answers) and `revised` (the text it
    rewrites) give `copies_critique` and `unchanged`; without them those flags are not looked for.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind of text {kind!r}; expected one of {', '.join(KINDS)}")
    found = {
        "truncated": finish_reason == "length",
        "repetition": repeated_share(text, config.repetition_ngram) >= config.repetition_share,
        "meta": kind in _REPLIES and is_meta(text, config.extra_meta_phrases),
        "empty": not text.strip(),
        "copies_critique": critique is not None and copied_share(text, critique) >= config.copies_critique_share,
        "unchanged": revised is not None and bool(text.strip()) and similarity(text, revised) >= config.unchanged_similarity,
    }
    return [flag for flag in FLAGS if found[flag]]


def union(flag_lists: Iterable[Iterable[str]]) -> list[str]:
    """Every flag in any of the lists, once, in the order of `FLAGS` (unknown names last, sorted)."""
    found = {flag for flags in flag_lists for flag in flags}
    return [f for f in FLAGS if f in found] + sorted(found - set(FLAGS))


def row_flags(record: RevisionRecord | SampleRecord) -> list[str]:
    """The row-level flags: the final revision's for a revision record; every answer's for a sample."""
    if isinstance(record, RevisionRecord):
        return list(record.steps[-1].revision_flags) if record.steps else []
    return union(record.response_flags)


def parse_flags(text: str) -> tuple[str, ...]:
    """A comma-separated list of flags (a CLI option such as `--drop-flags truncated,meta`), checked."""
    flags = tuple(f.strip() for f in text.split(",") if f.strip())
    unknown = [f for f in flags if f not in FLAGS]
    if unknown:
        raise CaiError(f"unknown flag {', '.join(unknown)}; the flags are {', '.join(FLAGS)}")
    return flags


def pair_flags(sample: SampleRecord, i: int, j: int) -> list[str]:
    """Every flag that answer i or answer j of the sample carries (none for unflagged old samples)."""
    return union(sample.response_flags[k] for k in (i, j) if k < len(sample.response_flags))


def flagged_pair(sample: SampleRecord, i: int, j: int, drop_flags: Iterable[str] = DEFAULT_DROP) -> list[str]:
    """The flags in `drop_flags` that answer i or j carries: the reasons to skip the pair, if any."""
    drop = set(drop_flags)
    return [f for f in pair_flags(sample, i, j) if f in drop]
