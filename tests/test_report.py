"""`cai report`: a page built from a run folder written by hand (realistic rows, no model), its
sections and numbers, hostile text kept as text, and the page opened in a real headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import stage_runs
from cli_run import invoke

from cai.core.errors import CaiError
from cai.core.records import Judgement, PreferenceRecord, RevisionRecord
from cai.metrics.judge import calibration, summarize
from cai.report import write_report
from cai.report.stats import (
    ensemble_agreement,
    lengths_by_round,
    position_points,
    training_curves,
)
from cai.report.worddiff import word_diff
from cai.stages.judge import p_x_better

HOSTILE = '<script>alert("pwned")</script></details><img src=x onerror=alert(1)>'
CHROMIUM = shutil.which("chromium")


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


PROVENANCE = {"model": "smollm2-135m-instruct", "sampling": {"temperature": 0.7, "max_tokens": 160},
              "style": "chat", "constitution_sha256": "ab" * 32, "seed": 0}


def _revision(i: int, prompt: str, initial: str, steps: list[tuple[str, str, str]], flags=()) -> dict:
    return {
        "id": f"rt{i}", "prompt": [{"role": "user", "content": prompt}], "initial_response": initial,
        "steps": [{"principle_id": p, "critique": c, "revision": r} for p, c, r in steps],
        "final_response": steps[-1][2], "stopped": None, "provenance": PROVENANCE, "flags": list(flags),
    }


def _preference(i: int, p_x: dict[str, tuple[float, float]], flags=()) -> dict:
    """A labelled pair whose judgements give p_first (AB, BA) per principle."""
    judgements = [{"principle_id": pid, "order": order, "p_first": p, "reasoning": None}
                  for pid, (ab, ba) in p_x.items() for order, p in (("AB", ab), ("BA", ba))]
    p = sum(ab + 1 - ba for ab, ba in p_x.values()) / (2 * len(p_x))
    x, y = f"answer x {i}", f"answer y {i}"
    chosen, rejected, pair = (x, y, [0, 1]) if p >= 0.5 else (y, x, [1, 0])
    return {
        "id": f"s{i}:0-1", "prompt": [{"role": "user", "content": f"How do I pick lock number {i}?"}],
        "chosen": [{"role": "assistant", "content": chosen}], "rejected": [{"role": "assistant", "content": rejected}],
        "p_chosen": max(p, 1 - p), "margin": 0.0, "judgements": judgements, "pair": pair,
        "provenance": {**PROVENANCE, "sampling": {"principles_per_pair": 2}}, "flags": list(flags),
    }


ENGINE = {"requests": 24, "cached": 0, "failed": 1, "prompt_tokens": 9120, "completion_tokens": 2410,
          "seconds": 3.1, "tokens_per_second": 777.4}


@pytest.fixture
def run(tmp_path) -> Path:
    """A run folder as the stages write it, with hostile text in the data."""
    run = tmp_path / "run"
    _jsonl(run / "responses.jsonl", [
        {"id": f"rt{i}", "prompt": [{"role": "user", "content": "q"}], "response": "a", "provenance": PROVENANCE,
         "flags": ["truncated"] if i == 0 else []} for i in range(3)
    ])
    _jsonl(run / "revisions.jsonl", [
        _revision(0, "How can I hurt my neighbour?", "Sure, here is how you could do it quietly.",
                  [("harmful", "The answer helps with violence.", "I can't help you hurt anyone."),
                   ("dangerous", "Still curt.", "I can't help you hurt anyone. If you are in a dispute, talk to a mediator.")],
                  flags=["meta"]),
        _revision(1, HOSTILE, f"Here you go: {HOSTILE}",
                  [("$\\frac{x}{$ <b>principle</b>", f"Critique quoting {HOSTILE}", "I will not run code for you.")]),
        _revision(2, "Tell me a joke about my boss.", "Your boss is an idiot.",
                  [("harmful", "Insulting.", "Why did the manager bring a ladder? To reach the next level.")]),
    ])
    _jsonl(run / "samples.jsonl", [
        {"id": f"s{i}", "prompt": [{"role": "user", "content": "q"}], "responses": ["a", "b"], "provenance": PROVENANCE}
        for i in range(4)
    ])
    _jsonl(run / "preferences.jsonl", [
        _preference(0, {"harmless": (0.9, 0.2), "ethical": (0.8, 0.3)}),  # both pick x
        _preference(1, {"harmless": (0.7, 0.6), "ethical": (0.3, 0.8)}),  # harmless x, ethical y
        _preference(2, {"harmless": (0.2, 0.9), "ethical": (0.4, 0.7)}, flags=["repetition"]),  # both y
    ] + ["not json at all"])
    (run / "preferences.jsonl").write_text((run / "preferences.jsonl").read_text().replace('"not json at all"', "{oops"))
    _jsonl(run / "errors.jsonl", [
        {"id": "rt9", "stage": "generate", "reason": "context_length: prompt of 9000 tokens", "line": 10},
        {"id": "s3:0-1", "stage": "label", "reason": f"judge: {HOSTILE}", "line": None},
    ])
    constitution = {"path": "constitution.yaml", "sha256": "c0" * 32, "few_shot_sha256": "f5" * 32, "name": "default"}
    _json(run / "manifest.json", {"stages": {
        "generate": {"model": "smollm2-135m-instruct", "style": "chat", "sampling": {"temperature": 0.7},
                     "prompts_sha256": "9f" * 32, "fingerprint": "e1" * 32, "status": "done", "rows_in": 4,
                     "rows_out": 3, "errors": 1, "engine": ENGINE, "started": "2025-05-01T10:00:00+00:00",
                     "finished": "2025-05-01T10:00:04+00:00", "seconds": 3.6, "versions": {"cai": "0.1.0"}},
        "critique": {"model": "smollm2-135m-instruct", "rounds": 2, "constitution": constitution, "status": "done",
                     "rows_in": 3, "rows_out": 3, "errors": 0, "stopped_early": {"context_length": 1},
                     "engine": ENGINE, "seconds": 8.2},
        "export_sft": {"output": "sft.jsonl", "rows_in": 3, "rows_out": 3, "flags_dropped": {"meta": 1}},
        "sample": {"model": "runs/sl-cai", "n": 2, "status": "running"},  # interrupted: no counts yet
        "label": {"judge_model": "smollm2-135m-instruct", "principles_per_pair": 2, "status": "done", "rows_in": 4,
                  "errors": 1, "rows_out": 3, "engine": ENGINE,
                  "counters": {"pairs": 5, "identical_pairs_dropped": 1, "flagged_pairs_dropped": 1,
                               "flagged_pairs_dropped: repetition": 1, "chunk_seconds": 2.5}},
        "export_prefs": {"min_confidence": 0.5, "rows_in": 3, "rows_out": 3},
    }})
    # `cai eval judge --out RUN/eval-judge`: summary.json and judgements.jsonl
    judged = [[Judgement(principle_id="harmless", order="AB", p_first=ab),
               Judgement(principle_id="harmless", order="BA", p_first=ba)]
              for ab, ba in [(0.9, 0.2), (0.8, 0.4), (0.6, 0.7), (0.3, 0.8), (0.95, 0.1), (0.55, 0.5)]]
    _json(run / "eval-judge" / "summary.json", {**summarize(judged), "judge_model": "smollm2-135m-instruct",
                                                "swap": True, "cot": False, "principles_per_pair": 1,
                                                "identical_pairs_dropped": 0, "errors": 0})
    _jsonl(run / "eval-judge" / "judgements.jsonl", [
        {"id": f"hh{i}", "p_human_choice": p_x_better(js),
         "judgements": [j.model_dump() for j in js]} for i, js in enumerate(judged)
    ])
    # trained models: an SFT log and a PPO log, as TRL's state.log_history holds them
    sft_log = [{"loss": 2.5 - 0.2 * s, "grad_norm": 3.0, "learning_rate": 5e-5, "mean_token_accuracy": 0.3 + 0.02 * s,
                "epoch": s / 10, "step": s} for s in range(1, 11)]
    sft_log.append({"train_runtime": 12.0, "train_loss": 1.6, "epoch": 1.0, "step": 10})
    _json(run / "models" / "sft" / "cai_train.json", {"job": "sft", "model": "smollm2-135m-instruct", "data": "sft.jsonl",
                                                      "data_sha256": "5f" * 32, "seconds": 14.2, "metrics": {"train_loss": 1.6},
                                                      "log_history": sft_log})
    ppo_log = [{"objective/kl": 0.01 * s, "objective/rlhf_reward": -1 + 0.1 * s, "objective/scores": 0.1 * s,
                "loss/policy_avg": -0.02, "loss/value_avg": 0.4 / s, "episode": 4 * s, "step": s} for s in range(1, 8)]
    _json(run / "models" / "ppo" / "cai_train.json", {"job": "ppo", "model": "models/sft", "log_history": ppo_log,
                                                      "metrics": {"objective/kl": 0.07}})
    _json(run / "models" / "old" / "cai_train.json", {"job": "pm", "metrics": {"train_loss": 0.69}})  # no log
    # `cai eval policies --out ELSEWHERE`, shown with --include
    policies = ["base", "sl-cai", "rl-cai"]
    _json(tmp_path / "eval-policies" / "eval.json", {"tags": {
        tag: {"elo": dict(zip(policies, elo)), "ci95": {p: [e - 40, e + 40] for p, e in zip(policies, elo)},
              "win_rate": {p: {q: 0.5 if p == q else 0.6 for q in policies} for p in policies}, "comparisons": 600}
        for tag, elo in (("harmless", [0, 55, 120]), ("helpful", [0, -20, -35]))
    }})
    return run


def _report(run: Path, **kwargs) -> str:
    path = write_report(run, include=[run.parent / "eval-policies"], **kwargs)
    assert path == run / "report.html"
    return path.read_text()


def test_report_shows_every_section_of_the_run(run):
    html = _report(run)
    for section in ("manifest", "sl-cai", "rl-cai", "eval-judge", "eval-policies", "training", "quality"):
        assert f'<section id="{section}">' in html, section
    # manifest: every stage, its counts, engine numbers and shortened hashes with the full one kept
    for stage in ("generate", "critique", "export_sft", "sample", "label", "export_prefs"):
        assert f">{stage}</a>" in html
    assert ">2,410<" in html and ">777.4<" in html
    # and every trained model, from its cai_train.json
    assert ">train sft: models/sft</a>" in html and ">train ppo: models/ppo</a>" in html and ">14.2<" in html
    assert f'<code title="{"c0" * 32}">{"c0" * 6}…</code>' in html
    # SL-CAI: principle counts, lengths by round, examples with the diff marked
    assert re.search(r"<td>harmful</td><td class=\"n\">2</td>", html)
    assert "Examples (3 of 3)" in html and html.count('<details class="example"') == 3
    assert "<del>here is how you could do it quietly</del><ins>talk to a mediator</ins>." in html
    # RL-CAI: the pair accounting from the manifest, agreement as defined in stats.ensemble_agreement
    assert re.search(r"identical pairs dropped</td><td class=\"n\">1<", html)
    assert re.search(r"pairs of answers</td><td class=\"n\">5<", html)
    assert re.search(r"flagged_pairs_dropped: repetition \(label\)</td><td class=\"n\">1<", html)
    assert re.search(r"all principles pick the same answer</td><td class=\"n\">0.6667<", html)
    assert "unreadable rows skipped: 1" in html
    # evals: the judge's summary, both tags' Elo tables and the win-rate matrix
    assert re.search(r"<th>accuracy</th><td class=\"n\">0.6667<", html)  # 4 of 6 pairs favour the human
    assert re.search(r"<td>rl-cai</td><td class=\"n\">120</td><td class=\"n\">80 – 160</td>", html)
    assert "<h4>helpful (600 comparisons)</h4>" in html
    # training: curves for the two logs, a note for the model trained before logs were kept
    assert html.count('alt="Training curves"') == 2 and "No per-step log" in html
    # flags per stage, drops from the manifest, errors per stage
    assert re.search(r"<td>generate</td><td><code>responses.jsonl</code></td><td class=\"n\">3</td><td class=\"n\">1</td>\s*<td>truncated: 1</td>", html)
    assert "<td>flags_dropped: meta</td>" in html and "<td>stopped_early: context_length</td>" in html
    assert "1 × context_length: prompt of 9000 tokens" in html
    # plots: principle draws, lengths, p_chosen, position bias, reliability, Elo, Elo scatter, 2 curves
    assert html.count('<img src="data:image/png;base64,') == 9


def test_hostile_text_stays_text(run):
    html = _report(run)
    assert "<script" not in html.lower() and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in html  # prompt, answer, critique, error
    assert html.count("<details") == html.count("</details>")  # the data's </details> closed nothing
    assert "$\\frac{x}{$ &lt;b&gt;principle&lt;/b&gt;" in html  # and its $ did not break the plot


def test_a_half_finished_run_still_gets_a_page(tmp_path):
    run = tmp_path / "run"
    _json(run / "manifest.json", {"stages": {"generate": {"status": "running"}, "broken": "not a dict"}})
    _json(run / "policies" / "eval.json", {"tags": {"harmless": {"elo": {"base": 0, "sl": "high", "rl": 30.5},
                                                                 "ci95": {"rl": [1, "x"]}, "win_rate": None},
                                                    "helpful": "not a dict"}})
    html = write_report(run, output=tmp_path / "elsewhere.html").read_text()
    assert 'id="manifest"' in html and 'id="sl-cai"' not in html and not (run / "report.html").exists()
    assert "<td>rl</td><td class=\"n\">30.5</td><td class=\"n\">30.5 – 30.5</td>" in html and "<td>sl</td>" not in html
    (tmp_path / "empty").mkdir()
    with pytest.raises(CaiError, match="no manifest, stage outputs"):
        write_report(tmp_path / "empty")
    with pytest.raises(CaiError, match="no such folder"):
        write_report(tmp_path / "missing")


def test_word_diff_marks_what_changed_and_escapes_the_rest():
    html, changed = word_diff("I will not help you <b>now</b>.", "I cannot help you <b>now</b>, sorry.")
    assert str(html) == "I <del>will not </del><ins>cannot </ins>help you &lt;b&gt;now&lt;/b<del>&gt;.</del><ins>&gt;, sorry.</ins>"
    assert changed == 4  # will, not, cannot, sorry: punctuation is compared but not counted
    assert word_diff("same", "same") == ("same", 0)


def test_lengths_by_round_count_the_rounds_each_example_reached():
    records = [RevisionRecord.model_validate(_revision(0, "p", "one two three", [("a", "c", "x y"), ("b", "c", "x")])),
               RevisionRecord.model_validate(_revision(1, "p", "one", [("a", "c", "x y z w")]))]
    assert lengths_by_round(records) == [[3, 1], [2, 4], [1]]


def test_position_points_and_ensemble_agreement_by_hand():
    prefs = [PreferenceRecord.model_validate(_preference(0, {"h": (0.9, 0.2), "e": (0.8, 0.3)})),
             PreferenceRecord.model_validate(_preference(1, {"h": (0.7, 0.6), "e": (0.3, 0.8)}))]
    points = [x for point in position_points(prefs) for x in point]
    assert points == pytest.approx([0.9, 0.8, 0.8, 0.7, 0.7, 0.4, 0.3, 0.2])
    agreement = ensemble_agreement(prefs)
    # pair 1: h says x (0.55), e says y (0.25); the ensemble (0.4) picks y, so only e agrees with it
    assert agreement == {"pairs": 2, "all_agree": 0.5, "pairwise": 0.5, "with_ensemble": {"e": 1.0, "h": 0.5},
                         "verdicts": {"e": 2, "h": 2}}
    assert ensemble_agreement(prefs[:0]) is None


def test_training_curves_group_trl_log_keys():
    log = [{"loss": 1.0, "rewards/accuracies": 0.5, "rewards/margins": 0.1, "reward_std": 2.0, "kl": 0.1,
            "objective/kl": 0.2, "policy/approxkl_avg": 0.3, "step": 1},
           {"train_runtime": 3.0, "train_loss": 1.0, "step": 1}]
    curves = training_curves(log)
    assert list(curves) == ["accuracy", "KL", "loss", "reward"]
    assert curves["KL"] == {"kl": ([1], [0.1]), "objective/kl": ([1], [0.2])}
    assert list(curves["reward"]) == ["rewards/margins"] and "train_loss" not in curves["loss"]


def test_calibration_gives_the_ece_that_summarize_reports():
    judged = [[Judgement(principle_id="h", order="AB", p_first=p)] for p in (0.9, 0.8, 0.3, 0.65, 0.97, 0.5)]
    bins, ece = calibration([j[0].p_first for j in judged])
    assert round(ece, 4) == summarize(judged)["ece"] and sum(b["n"] for b in bins) == 6


def test_report_command(run, tmp_path):


    result = invoke(["report", str(run), "--include", str(tmp_path / "eval-policies"),
                                      "-o", str(tmp_path / "r.html"), "--examples", "1"])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "r.html").read_text()
    assert "Examples (1 of 3)" in html and 'id="eval-policies"' in html


@pytest.mark.slow
def test_trainers_log_reaches_the_report(tmp_path, tiny_model):
    """A real (tiny) SFT run records TRL's per-step log in cai_train.json; the report draws it."""
    from cai.train.sft import train_sft

    data = tmp_path / "run" / "sft.jsonl"
    _jsonl(data, [{"messages": [{"role": "user", "content": f"question {i}"},
                                {"role": "assistant", "content": f"a kind answer number {i}"}]} for i in range(8)])
    info = train_sft(data, str(tiny_model), tmp_path / "run" / "models" / "sft",
                     overrides={"max_steps": 3, "per_device_train_batch_size": 2, "max_length": 64})
    steps = [e for e in info["log_history"] if "loss" in e]
    assert [e["step"] for e in steps] == [1, 2, 3]
    html = write_report(tmp_path / "run").read_text()
    assert html.count('alt="Training curves"') == 1


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium: apt-get install -y chromium")
def test_report_opens_in_headless_chromium(run, tmp_path):
    """No console errors, no request beyond the file itself, every image decoded; and a screenshot."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")
    path = write_report(run, include=[tmp_path / "eval-policies"])
    problems, requests = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(path.as_uri(), wait_until="load")
        images = page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert problems == []
    assert [u for u in requests if not u.startswith("data:")] == [path.as_uri()]
    assert len(images) == 9 and all(complete and width > 0 for _, complete, width in images), images
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_report_of_real_stage_outputs(tmp_path, engine, default_constitution, tiny):
    """The tiny model through generate, critique, sample, label and eval judge: the report reads
    what the stages really write (their rows and manifest), not only the hand-written rows above."""
    from cai.core.run import RunDir
    from cai.data import DEMO_PROMPTS
    from cai.engine.engine import SamplingConfig
    from cai.stages.critique import CritiqueConfig
    from cai.stages.generate import GenerateConfig
    from cai.stages.label import LabelConfig

    run = RunDir(tmp_path / "run")
    sampling = SamplingConfig(temperature=1.0, max_tokens=12)
    stage_runs.generate(run, DEMO_PROMPTS, tiny, GenerateConfig("tiny", sampling=sampling), limit=4)
    stage_runs.critique(run, tiny, default_constitution, CritiqueConfig("tiny", rounds=2, sampling=sampling))
    stage_runs.generate(run, DEMO_PROMPTS, tiny, GenerateConfig("tiny", sampling=sampling, n=2), limit=4, stage="sample")
    stage_runs.label(run, tiny, default_constitution, LabelConfig("tiny", principles_per_pair=2, keep_flagged=True))
    pairs = Path(__file__).resolve().parent / "data" / "hh-rlhf-harmless-test-first300.jsonl.gz"
    stage_runs.eval_judge(pairs, run.path / "eval-judge", tiny, default_constitution, LabelConfig("tiny", keep_flagged=True), limit=6)

    html = write_report(run.path).read_text()
    for section in ("manifest", "sl-cai", "rl-cai", "eval-judge", "quality"):
        assert f'<section id="{section}">' in html, section
    assert "Examples (4 of 4)" in html and "Ensemble agreement" in html
    # principle draws, lengths, p_chosen, position bias, reliability
    assert html.count('<img src="data:image/png;base64,') == 5


def test_the_judge_section_shows_each_principle_length_bias_cost_and_calibration(tmp_path):
    from cai.metrics.calibration import fit_calibration
    from cai.metrics.judge_stats import analyse, cost

    run = tmp_path / "run"
    judged = [[Judgement(principle_id=pid, order="AB", p_first=p)]
              for pid, p in [("harmless", 0.9), ("harmless", 0.7), ("helpful", 0.3), ("helpful", 0.8),
                             ("harmless", 0.2), ("helpful", 0.6)]]
    rows = [{"id": f"hh{i}", "chars": [100 + 10 * i, 100], "p_human_choice": p_x_better(js),
             "judgements": [j.model_dump() for j in js]} for i, js in enumerate(judged)]
    summary = {**summarize(judged), **analyse(rows, judged, seed=0), "cost": cost(6, 6, None, 3.0),
               "calibration": {**fit_calibration(judged, "temperature", folds=2), "file": "cal.json"}}
    _json(run / "eval-judge" / "summary.json", summary)
    _jsonl(run / "eval-judge" / "judgements.jsonl", rows)
    html = write_report(run).read_text()
    assert re.search(r"<th>kappa</th><td class=\"n\">", html) and "<th>accuracy_ci95</th>" in html
    # per principle, least accurate first: helpful 2 of 3, harmless 2 of 3 (a tie keeps the summary's order)
    assert re.search(r"<td><code>harmless</code></td><td class=\"n\">0.6667</td><td class=\"n\">\[[0-9., ]+\]</td><td class=\"n\">3</td>", html)
    assert re.search(r"<th>humans_prefer_longer</th><td class=\"n\">1</td>", html)
    assert re.search(r"<th>seconds</th><td class=\"n\">500</td>", html)  # 3 s for 6 pairs
    assert re.search(r"<th>method</th><td class=\"n\">temperature</td>", html) and "<th>ece_after</th>" in html
