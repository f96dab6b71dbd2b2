"""Seeded, weighted draws of principles.

Each draw depends only on (seed, example id, round), never on batch order or batch size, so a
rerun, a resumed run or a run split across workers draws the same principles.
"""

from __future__ import annotations

import hashlib
import random
from typing import Protocol, TypeVar


class Weighted(Protocol):
    id: str
    weight: float


P = TypeVar("P", bound=Weighted)


def rng_for(*key: object) -> random.Random:
    digest = hashlib.sha256(":".join(map(str, key)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def draw(principles: list[P], seed: int, example_id: str, round_index: int) -> P:
    rng = rng_for(seed, example_id, round_index)
    return rng.choices(principles, weights=[p.weight for p in principles])[0]


def derived_seed(*key: object) -> int:
    """A 31-bit sampling seed for one request, stable across runs and batch layouts."""
    return rng_for(*key).getrandbits(31)


def draw_distinct(principles: list[P], k: int, seed: int, key: str) -> list[P]:
    """k different principles, weighted (Efraimidis–Spirakis: the k largest u ** (1 / weight))."""
    rng = rng_for(seed, key, "distinct")
    scored = sorted(principles, key=lambda p: rng.random() ** (1.0 / p.weight), reverse=True)
    return scored[:k]
