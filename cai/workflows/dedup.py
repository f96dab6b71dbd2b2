"""Keep a stream of new prompts free of repeats: exact and near duplicates, too short, too long.

`PromptFilter` holds every prompt seen so far (the seeds first) in a MinHash LSH index
(datasketch), so it can be fed batch after batch: `add(text)` returns why the text is dropped, or
None when it is kept (and indexed, so later prompts are checked against it too). Every reason is
counted. Nothing in it is random: MinHash permutations come from a fixed seed, so the same texts
in the same order give the same decisions on every run.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from datasketch import MinHash, MinHashLSH

# Why a prompt is dropped: the keys of `PromptFilter.counts` (besides "kept").
EMPTY, TOO_SHORT, TOO_LONG = "empty", "too_short", "too_long"
DUPLICATE, DUPLICATE_OF_SEED = "duplicate", "duplicate_of_seed"
NEAR_DUPLICATE, NEAR_DUPLICATE_OF_SEED = "near_duplicate", "near_duplicate_of_seed"


@dataclass(frozen=True)
class FilterConfig:
    min_chars: int = 15
    max_chars: int = 600
    # Two prompts are near duplicates when the Jaccard similarity of their sets of `shingle`-character
    # pieces (of the normalised text) is at least `threshold`. With 5 characters, 0.55 catches
    # reworded copies ("neighbour's … holiday" / "neighbor's … vacation": 0.63) but not prompts
    # that share a frame and differ in substance ("shoplift from a supermarket" / "steal a car": 0.47).
    threshold: float = 0.55
    shingle: int = 5
    num_perm: int = 128
    hash_seed: int = 1

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def normalise(text: str) -> str:
    """Case-folded words without punctuation, single-spaced: what 'the same prompt' compares."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


class PromptFilter:
    def __init__(self, config: FilterConfig = FilterConfig(), seeds: Iterable[str] = ()):
        self.config = config
        self.counts: Counter = Counter()
        # The index only proposes candidates, each then confirmed by its estimated similarity, so it
        # is tuned to miss few: weighted 95:5 against false negatives, it finds about 95% of pairs
        # at the threshold and 99% a little above (the even default finds under half at it).
        self._lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm, weights=(0.05, 0.95))
        self._sketches: dict[str, MinHash] = {}  # LSH key ("seed:3", "new:7") -> its MinHash
        self._exact: dict[str, str] = {}  # normalised text -> "seed" or "new"
        for text in seeds:
            self._index(normalise(text), "seed")

    def add(self, text: str) -> str | None:
        """The reason `text` is dropped, or None: then it is kept and later prompts are checked against it."""
        reason = self._reason(text)
        self.counts[reason or "kept"] += 1
        if reason is None:
            self._index(normalise(text), "new")
        return reason

    def _reason(self, text: str) -> str | None:
        c = self.config
        norm = normalise(text)
        if not norm:
            return EMPTY
        if len(text.strip()) < c.min_chars:
            return TOO_SHORT
        if len(text.strip()) > c.max_chars:
            return TOO_LONG
        if norm in self._exact:
            return DUPLICATE_OF_SEED if self._exact[norm] == "seed" else DUPLICATE
        sketch = self._sketch(norm)
        close = [k for k in self._lsh.query(sketch) if sketch.jaccard(self._sketches[k]) >= c.threshold]
        if close:
            return NEAR_DUPLICATE_OF_SEED if any(k.startswith("seed:") for k in close) else NEAR_DUPLICATE
        return None

    def _sketch(self, norm: str) -> MinHash:
        k = self.config.shingle
        sketch = MinHash(num_perm=self.config.num_perm, seed=self.config.hash_seed)
        sketch.update_batch(norm[i : i + k].encode() for i in range(max(1, len(norm) - k + 1)))
        return sketch

    def _index(self, norm: str, origin: str) -> None:
        if norm in self._exact or not norm:
            return
        self._exact[norm] = origin
        key = f"{origin}:{len(self._sketches)}"
        self._sketches[key] = sketch = self._sketch(norm)
        self._lsh.insert(key, sketch)
