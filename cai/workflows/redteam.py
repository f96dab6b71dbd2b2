"""`cai redteam expand` as a job: generation as ordinary stages, the duplicate filter after them.

Writing the prompts is a `Stage` like any other, run by `cai.core.stage.execute` (chunked, resumable,
cached, errors counted, local or Ray): its source is a range of slots, each slot's seeds drawn by
(seed, slot index) alone, so any chunk can be done anywhere. The filter (`cai.workflows.dedup.PromptFilter`)
holds every prompt kept so far, so it must see the rows in slot order in one process: it runs
afterwards, here, over the generated rows, and keeps the first N that pass.

When a round leaves fewer than N kept, another round writes more slots (round r's stage is
`redteam_r`, its rows `generated_r.jsonl`), about as many as the rate kept so far says are needed,
never more than the first round; it stops when N are kept or a round keeps none. A rerun redoes
no finished chunk: the rounds' sizes follow from the same rows, and replaying the filter is cheap.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from cai.core.errors import CaiError
from cai.core.records import PromptRow, RedTeamPrompt, RedTeamSlot
from cai.core.run import RunDir, now, read_jsonl, write_jsonl
from cai.core.sources import Source
from cai.core.stage import JobReport, Stage, config_settings
from cai.engine.config import EngineConfig
from cai.io.inputs import load_prompts, sha256_of
from cai.stages.redteam import RedTeamConfig, build_slots, redteam_batch, seed_text
from cai.workflows.dedup import FilterConfig, PromptFilter

log = logging.getLogger("cai")

NOT_NEEDED = "not_needed"  # generated after N were kept: left out unread by the filter


@dataclass(frozen=True)
class SlotSource(Source):
    """Slots `start` … `stop` − 1, drawn from the seed prompts. The seeds file is the input (its
    sha256 is in the fingerprint); each raw row is a slot index, which stands for its line."""

    seeds: tuple[PromptRow, ...] = ()
    start: int = 0
    stop: int = 0
    shots: int = 4
    seed: int = 0

    def raw(self) -> Iterator[tuple[int, int]]:
        return ((index, index) for index in range(self.start, self.stop))

    def parse(self, line: int, raw: int) -> RedTeamSlot:
        return build_slots(list(self.seeds), [raw], self.shots, self.seed)[0]


def round_stage(seeds_path: Path, seeds: list[PromptRow], round_number: int, start: int, stop: int,
                config: RedTeamConfig, engine: EngineConfig) -> Stage:
    name = f"redteam_{round_number}"
    settings = {**config_settings(config), "seeds": str(seeds_path), "slots": [start, stop]}
    source = SlotSource(Path(seeds_path), name, None, tuple(seeds), start, stop, config.shots, config.seed)
    return Stage(name, f"generated_{round_number}.jsonl", source,
                 partial(redteam_batch, config=config, stage=name), settings, engine)


def load_seeds(path: Path, shots: int, seed: int) -> list[PromptRow]:
    seeds, problems = load_prompts(path, stage="redteam")
    for p in problems:
        log.warning("%s:%s: %s", path, p.line, p.reason)
    if not seeds:
        raise CaiError(f"{path}: no usable seed prompts")
    build_slots(seeds, [], shots, seed)  # refuses a --shots the seeds cannot fill, before any work
    return seeds


def expand(run: RunDir, seeds_path: Path, n: int, config: RedTeamConfig, engine: EngineConfig,
           filter_config: FilterConfig, run_stage: Callable[[RunDir, Stage], JobReport]) -> list[JobReport]:
    """Rounds of generation until `n` prompts pass the filter (or a round passes none), then
    RUN/prompts.jsonl. Returns each round's report, then the filter's."""
    if n < 1:
        raise CaiError("-n must be at least 1")
    seeds = load_seeds(seeds_path, config.shots, config.seed)
    with run.locked():
        prompt_filter = PromptFilter(filter_config, [seed_text(s) for s in seeds])
        kept: list[RedTeamPrompt] = []
        reports, rounds, errors, not_needed = [], [], 0, 0
        start, size = 0, n
        while True:
            report = run_stage(run, round_stage(seeds_path, seeds, len(rounds) + 1, start, start + size, config, engine))
            reports.append(report)
            before = len(kept)
            for row in read_jsonl(report.output, RedTeamPrompt):
                if len(kept) == n:
                    not_needed += 1
                elif prompt_filter.add(row.prompt) is None:
                    kept.append(row)
            errors += len(report.skipped)
            rounds.append({"round": len(rounds) + 1, "slots": [start, start + size], "generated": report.rows_out,
                           "errors": len(report.skipped), "kept": len(kept) - before})
            start += size
            if len(kept) >= n or len(kept) == before:
                break
            size = min(n, math.ceil((n - len(kept)) * start / len(kept)))
        output = run.file("prompts.jsonl")
        write_jsonl(output, kept)
        counts = Counter({k: v for k, v in prompt_filter.counts.items() if k != "kept"})
        counts[NOT_NEEDED] = not_needed
        run.record_stage("redteam_expand", {
            "n": n, "kept": len(kept), "slots": start, "errors": errors, "dropped": dict(sorted(counts.items())),
            "rounds": rounds, "seeds": str(seeds_path), "seeds_sha256": sha256_of(seeds_path),
            "filter": filter_config.to_dict(), "output": str(output), "finished": now()})
    return reports + [JobReport("redteam expand", start, len(kept), output,
                                notes=_notes(n, kept, start, errors, counts, rounds), counters=counts)]


def _notes(n: int, kept: list, slots: int, errors: int, counts: Counter, rounds: list[dict]) -> list[str]:
    dropped = ", ".join(f"{reason} {count}" for reason, count in sorted(counts.items()) if count) or "none"
    notes = [f"{slots} slots in {len(rounds)} round(s): {len(kept)} kept, {errors} failed; dropped: {dropped}"]
    if len(kept) < n:
        notes.append(f"only {len(kept)} of the {n} prompts asked for: round {len(rounds)} kept none "
                     "(more seeds, --shots, a higher --temperature or another model may help)")
    return notes
