"""The published folder, put together: the configurations chosen, the hub checked before anything
is written, every file written into a temporary folder beside FOLDER and moved into place whole,
so that a failed publish leaves no half folder, then the push."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cai.core.errors import CaiError
from cai.core.run import RunDir, now
from cai.io.yaml_errors import did_you_mean
from cai.publish import configs, files, hub
from cai.publish.card import build_card


@dataclass
class Published:
    folder: Path
    written: dict[str, dict[str, int]]  # config -> split -> rows
    notes: list[str] = field(default_factory=list)
    pushed: str | None = None


def names(values: list[str] | None) -> list[str]:
    """--include/--exclude values: repeated, comma-separated, or both; each a configuration."""
    found = [n.strip() for v in values or [] for n in v.split(",") if n.strip()]
    for name in found:
        if name not in configs.NAMES:
            raise CaiError(f"no configuration '{name}'{did_you_mean(name, list(configs.NAMES))}; "
                           f"they are {', '.join(configs.NAMES)}")
    return found


def choose(run: Path, include: list[str], exclude: list[str]) -> list[configs.ConfigSpec]:
    held = [c for c in configs.CONFIGS if c.source(run)]
    missing = [n for n in include if n not in {c.name for c in held}]
    if missing:
        spec = {c.name: c for c in configs.CONFIGS}[missing[0]]
        raise CaiError(f"{run} holds no '{missing[0]}' data ({' or '.join(spec.files)}); "
                       f"it holds: {', '.join(c.name for c in held) or 'none'}")
    chosen = [c for c in held if (not include or c.name in include) and c.name not in exclude]
    if not chosen:
        raise CaiError(f"nothing to publish from {run}: it holds {', '.join(c.name for c in held) or 'no data'}"
                       f"{' and --include/--exclude leave none of it' if held else ''}")
    return chosen


def _check_out(run: Path, out: Path, force: bool) -> None:
    if out.resolve() == run.resolve() or run.resolve().is_relative_to(out.resolve()):
        raise CaiError(f"--out {out} would replace the run folder: name a folder of its own")
    if out.exists() and not out.is_dir():
        raise CaiError(f"--out {out} is a file")
    if out.is_dir() and any(out.iterdir()) and not _published_before(out) and not force:
        raise CaiError(f"--out {out} holds other files: name a new folder, or --force to replace it")


def _published_before(out: Path) -> bool:
    """A folder an earlier `cai publish` wrote (its card carries cai's tag): replaced without --force."""
    from huggingface_hub import DatasetCard

    try:
        return "cai" in (DatasetCard.load(out / "README.md").data.tags or [])
    except Exception:  # noqa: BLE001 - no card, or not a card: not ours
        return False


def publish(run_path: Path, out: Path, include: list[str] | None = None, exclude: list[str] | None = None,
            license: str = "unknown", constitutions: list[Path] | None = None, pipeline: Path | None = None,
            push_to: str | None = None, private: bool = False, title: str | None = None, force: bool = False) -> Published:
    run = RunDir(run_path)
    if not run.manifest_path.is_file():
        raise CaiError(f"{run.path} is not a run folder (no manifest.json)")
    chosen = choose(run.path, names(include), names(exclude))
    _check_out(run.path, out, force)
    api = hub.check(push_to) if push_to else None  # before anything is written
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.publish-"))
    try:
        with run.locked():
            manifest = run.manifest()
            result = _write(run, tmp, chosen, manifest, license, constitutions or [], pipeline, push_to or out.name,
                            title or f"Constitutional AI data: {run.path.resolve().name}")
        tmp.chmod(0o755)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result.folder = out
    run.record_stage("publish", {"output": str(out), "configs": result.written, "license": license,
                                 "pushed_to": push_to, "finished": now()})
    if api is not None:
        result.pushed = hub.push(api, out, push_to, private)
    return result


def _write(run: RunDir, tmp: Path, chosen: list[configs.ConfigSpec], manifest: dict, license: str,
           constitutions: list[Path], pipeline: Path | None, repo: str, title: str) -> Published:
    written, infos, notes = {}, {}, []
    for spec in chosen:
        splits = {split: configs.write_split(path, spec.record, tmp / spec.name / f"{split}-00000-of-00001.parquet")
                  for split, path in configs.splits(spec, run.path).items()}
        if splits["train"].rows:
            written[spec.name] = {split: w.rows for split, w in splits.items()}
            infos[spec.name] = configs.info(spec, splits)
        else:
            shutil.rmtree(tmp / spec.name, ignore_errors=True)
            notes.append(f"{spec.name}: {spec.source(run.path).name} holds no rows, left out")
    if not written:
        raise CaiError(f"nothing to publish from {run.path}: its files hold no rows")
    base = pipeline.resolve().parent if pipeline else None
    copied = files.copy_constitutions(manifest, constitutions, base, tmp)
    pipeline_file = files.copy_pipeline(pipeline, tmp) if pipeline else None
    summary = next((json.loads(p.read_text()) for p in (run.file("eval_judge/summary.json"), run.file("summary.json"))
                    if p.is_file()), None)
    card = build_card(manifest, written, infos, copied, license, summary, pipeline_file, repo, title)
    card.save(tmp / "README.md")
    return Published(tmp, written, notes)
