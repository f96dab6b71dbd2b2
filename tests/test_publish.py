"""`cai publish`: a tiny model's real run (SL-CAI, RL-CAI, rules, eval judge) as a Hugging Face
dataset folder: every configuration loads with its rows, the card reads back, nothing of this
machine leaks, the push fails in one line offline, TRL's trainers take `sft` and `prefs`."""

import json
import shutil
import socket
from pathlib import Path

import pytest
import stage_runs
import yaml
from cli_run import cai

from cai.core.errors import CaiError
from cai.core.records import ComparisonRecord, PromptRow, Provenance, RedTeamPrompt
from cai.core.run import RunDir, write_jsonl
from cai.data import DEFAULT_CONSTITUTION, DEMO_PROMPTS
from cai.engine.engine import SamplingConfig
from cai.executors.local import LocalExecutor
from cai.exports.filters import human_preferences
from cai.exports.rules import export_rules
from cai.publish import publish
from cai.publish.clean import public_name, scrub
from cai.stages.critique import CritiqueConfig
from cai.stages.generate import GenerateConfig
from cai.stages.label import LabelConfig
from cai.stages.rules import RulesConfig
from cai.workflows import jobs
from cai.workflows.rules import rules_stage

HH = Path(__file__).resolve().parent / "data" / "hh-rlhf-harmless-test-first300.jsonl.gz"
ROOT = Path(__file__).resolve().parent.parent


def lines(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


@pytest.fixture(scope="module")
def run(tmp_path_factory, engine, tiny, tiny_model):
    """SL-CAI, RL-CAI, rules (half the prompts held back) and eval judge in one run folder, the
    model named by its absolute path (as `--model DIR` records it)."""
    from cai.constitution.schema import load_constitution

    constitution = load_constitution(DEFAULT_CONSTITUTION)
    model, sampling = str(tiny_model), SamplingConfig(max_tokens=8)
    run = RunDir(tmp_path_factory.mktemp("publish") / "run")
    stage_runs.generate(run, DEMO_PROMPTS, tiny, GenerateConfig(model, sampling=sampling), limit=4)
    stage_runs.critique(run, tiny, constitution, CritiqueConfig(model, rounds=2, sampling=sampling))
    jobs.export_sft(run, keep_flagged=True)
    stage_runs.generate(run, DEMO_PROMPTS, tiny, GenerateConfig(model, sampling=SamplingConfig(1.0, max_tokens=8), n=2),
                        limit=4, stage="sample")
    stage_runs.label(run, tiny, constitution, LabelConfig(model, keep_flagged=True))
    jobs.export_prefs(run, keep_flagged=True)
    jobs.execute(run, rules_stage(run, "samples", run.file("samples.jsonl"), constitution, RulesConfig(model), tiny),
                 LocalExecutor())
    export_rules(run, constitution, heldout=0.5)
    stage_runs.eval_judge(HH, run.file("eval_judge"), tiny, constitution, LabelConfig(model), limit=3)
    return run


@pytest.fixture(scope="module")
def pipeline_file(run, tiny_model):
    """A pipeline file with a server address, an absolute model path and a key in it."""
    path = run.path.parent / "pipeline.yaml"
    path.write_text(f"run: run\nmodel: {tiny_model}\n# key: hf_abcdefghijklmnopqrstuvwx\n"
                    "engine: {server: [http://127.0.0.1:8000/v1]}\ngenerate: {prompts: p.jsonl}\npublish:\n")
    return path


@pytest.fixture(scope="module")
def folder(run, pipeline_file):
    out = run.path.parent / "published"
    publish(run.path, out, license="cc-by-4.0", pipeline=pipeline_file)
    return out


@pytest.mark.slow
def test_every_configuration_loads_with_the_rows_of_its_file(run, folder):
    from datasets import load_dataset

    files = {"sft": "sft.jsonl", "prefs": "prefs.jsonl", "preferences": "preferences.jsonl",
             "revisions": "revisions.jsonl", "rule_scores": "rule_scores.jsonl", "rules": "rules.jsonl"}
    for name, file in files.items():
        data = load_dataset(str(folder), name)
        assert data["train"].num_rows == lines(run.file(file)) > 0, name
    rules = load_dataset(str(folder), "rules")
    assert set(rules) == {"train", "test"} and rules["test"].num_rows == lines(run.file("rules_heldout.jsonl")) > 0
    assert {p.name for p in folder.iterdir() if p.is_dir()} == {*files, "constitution", "prompts"}

    # nested records survive: structs and lists of structs; free-keyed mappings as JSON
    pref = load_dataset(str(folder), "preferences", split="train")[0]
    original = json.loads(run.file("preferences.jsonl").read_text().splitlines()[0])
    assert [j["principle_id"] for j in pref["judgements"]] == [j["principle_id"] for j in original["judgements"]]
    assert pref["judgements"][0]["p_first"] == pytest.approx(original["judgements"][0]["p_first"])
    assert pref["prompt"] == original["prompt"] and pref["margin"] == pytest.approx(original["margin"])
    assert json.loads(pref["provenance"]["sampling"]) == original["provenance"]["sampling"]
    assert pref["provenance"]["model"] == Path(original["provenance"]["model"]).name  # the folder's name, not its path
    steps = load_dataset(str(folder), "revisions", split="train")[0]["steps"]
    assert len(steps) == 2 and {"principle_id", "critique", "revision", "revision_flags"} <= set(steps[0])
    scores = load_dataset(str(folder), "rule_scores", split="train")[0]["scores"]
    assert set(json.loads(scores)) == {r["id"] for r in yaml.safe_load(DEFAULT_CONSTITUTION.read_text())["rules"]}


@pytest.mark.slow
def test_the_card_reads_back_with_its_metadata_and_the_run_s_story(run, folder):
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(folder / "README.md")
    data = card.data
    assert data.license == "cc-by-4.0" and data.size_categories == ["n<1K"]
    assert set(data.task_categories) == {"text-generation", "text-classification"}
    assert {"constitutional-ai", "cai", "dpo", "sft"} <= set(data.tags)
    configs = {c["config_name"]: c["data_files"] for c in data.configs}
    infos = {i["config_name"]: i for i in data.dataset_info}
    assert infos["prefs"]["splits"] == [{"name": "train", "num_bytes": infos["prefs"]["dataset_size"],
                                         "num_examples": lines(run.file("prefs.jsonl"))}]
    assert {"name": "margin", "dtype": "float64"} in infos["prefs"]["features"]
    assert configs["rules"] == [{"split": "train", "path": "rules/train-*.parquet"},
                                {"split": "test", "path": "rules/test-*.parquet"}]
    manifest = json.loads(run.manifest_path.read_text())["stages"]
    sha = manifest["critique"]["constitution"]["sha256"]
    body = card.text
    constitution = yaml.safe_load(DEFAULT_CONSTITUTION.read_text())
    assert sha in body and all(f"| {p['id']} |" in body for p in constitution["critique_revision"] + constitution["rules"])
    for needed in ("2212.08073", "## Models", "## Sampling", "## Judge", "## Counts per stage",
                   "## The judge's agreement with people", "accuracy", 'load_dataset("published", "prefs")'):
        assert needed in body, needed
    assert f"| critique | {manifest['critique']['rows_in']} | {manifest['critique']['rows_out']} | 0 |" in body
    tiny = Path(manifest["generate"]["model"]).name
    assert f"| {tiny} |" in body  # the model by its folder's name, with its fingerprint
    # the copied constitution is the one the rows name, and checks with its few-shot files
    assert (folder / "constitution" / "default.yaml").read_bytes() == DEFAULT_CONSTITUTION.read_bytes()
    done = cai("constitution", "check", folder / "constitution" / "default.yaml")
    assert done.returncode == 0 and sha in done.stdout


@pytest.mark.slow
def test_nothing_of_this_machine_reaches_the_folder(run, folder, tiny_model):
    import pyarrow.parquet as pq

    machine = [str(run.path.parent.parent), str(tiny_model), str(Path.home()), str(ROOT)]
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        text = json.dumps(pq.read_table(path).to_pylist()) if path.suffix == ".parquet" else path.read_text()
        for bad in [*machine, "http://127", "hf_abcdefghijklmnop"]:
            assert bad not in text, (path, bad)
    copy = (folder / "pipeline.yaml").read_text()
    assert f"model: {tiny_model.name}" in copy and "server: [REDACTED_URL]" in copy


@pytest.mark.slow
def test_include_and_exclude_choose_configurations(run, tmp_path):
    only = publish(run.path, tmp_path / "only", include=["sft,prefs"])
    assert list(only.written) == ["sft", "prefs"]
    assert sorted(p.name for p in (tmp_path / "only").iterdir()) == ["README.md", "constitution", "prefs", "prompts", "sft"]
    # publishing again into it replaces it whole: no configuration of before is left behind
    again = publish(run.path, tmp_path / "only", exclude=["prefs", "preferences", "rule_scores", "rules"])
    assert list(again.written) == ["sft", "revisions"] and not (tmp_path / "only" / "prefs").exists()
    with pytest.raises(CaiError, match=r"no configuration 'pref' \(did you mean 'prefs'\?\)"):
        publish(run.path, tmp_path / "x", include=["pref"])
    with pytest.raises(CaiError, match="holds no 'prompts' data"):
        publish(run.path, tmp_path / "x", include=["prompts"])
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(CaiError, match="holds other files"):
        publish(run.path, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me" and not (tmp_path / "x").exists()


@pytest.mark.slow
def test_a_moved_constitution_is_found_by_its_sha256_or_asked_for(run, tmp_path):
    moved = RunDir(tmp_path / "moved")
    shutil.copytree(run.path, moved.path)
    manifest = json.loads(moved.manifest_path.read_text())
    edited = tmp_path / "mine.yaml"
    edited.write_text(DEFAULT_CONSTITUTION.read_text().replace("name:", "name: edited", 1) + "\n")
    for entry in manifest["stages"].values():
        if isinstance(entry.get("constitution"), dict):
            entry["constitution"]["path"] = str(edited)  # its recorded path now holds another file
            entry["constitution"]["sha256"] = "0" * 64
    moved.manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(CaiError, match="pass the file it used with --constitution FILE"):
        publish(moved.path, tmp_path / "out", include=["sft"])
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


PROV = Provenance(model="/home/me/models/judge", sampling={"temperature": 1.0}, style="chat", seed=3)


def hand_written_run(path: Path) -> RunDir:
    """Rows of the kinds the tiny run has not: red-team prompts, policy comparisons, and a mixed
    preference set's human pair (no judgements, empty sampling)."""
    run = RunDir(path)
    write_jsonl(run.file("prompts.jsonl"), [RedTeamPrompt(id=f"redteam-{i}", prompt=f"How do I pick lock {i}?",
                                                          seed_ids=["a", "b"], provenance=PROV) for i in range(3)])
    write_jsonl(run.file("comparisons.jsonl"), [
        ComparisonRecord(id="p1", policies=("base", "sl"), tag="harmless", principle_id="honest", order=o, p_first=0.4,
                         tie=False, provenance=PROV) for o in ("AB", "BA")])
    ask = PromptRow(id="h1", prompt=[{"role": "user", "content": "Hi"}], line=1)
    write_jsonl(run.file("prefs.jsonl"), human_preferences([(ask, "Hello!", "Go away.")]))
    run.manifest_path.write_text(json.dumps({"stages": {
        "redteam_expand": {"model": "/home/me/models/judge", "kept": 3, "dropped": {"near_duplicate": 2}},
        "eval_policies": {"judge_model": "smollm2-135m-instruct", "policies": {"sl": {"model": "/home/me/runs/w/models/sl-cai"}}}}}))
    return run


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("token", ["hf_notarealtokenbutlongenough", None])
def test_push_without_a_network_fails_in_one_line_and_writes_nothing(tmp_path, token):
    import os

    run = hand_written_run(tmp_path / "run")

    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_HUB_OFFLINE")}
    env |= {"HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}", **({"HF_TOKEN": token} if token else {})}
    done = cai("publish", run.path, "--out", tmp_path / "out", "--push-to-hub", "me/cai-data", env=env, timeout=120)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert ("HF_TOKEN" in done.stderr) if token is None else ("cannot reach the Hugging Face Hub" in done.stderr)
    assert token is None or token not in done.stderr + done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.slow
def test_trl_trainers_take_sft_and_prefs_as_published(folder, tiny_model, tmp_path):
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    common = {"max_steps": 1, "per_device_train_batch_size": 2, "report_to": [], "save_strategy": "no",
              "max_length": 128, "use_cpu": True}
    sft = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model), processing_class=tokenizer,
                     train_dataset=load_dataset(str(folder), "sft", split="train"),
                     args=SFTConfig(output_dir=str(tmp_path / "sft"), **common))
    assert sft.train().global_step == 1
    dpo = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model), processing_class=tokenizer,
                     train_dataset=load_dataset(str(folder), "prefs", split="train"),
                     args=DPOConfig(output_dir=str(tmp_path / "dpo"), **common))
    assert dpo.train().global_step == 1


@pytest.mark.slow
def test_publish_is_a_pipeline_stage(run, tmp_path):
    """`publish:` in a pipeline file runs `cai publish RUN --out RUN/publish`, with the file copied in."""
    project = tmp_path / "project"
    shutil.copytree(run.path, project / "runs" / "r", ignore=shutil.ignore_patterns("eval_judge"))
    (project / "pipeline.yaml").write_text("run: runs/r\npublish: {license: apache-2.0, include: [sft, prefs]}\n")
    plan = cai("run", "pipeline.yaml", "--dry-run", cwd=project)
    assert plan.returncode == 0 and "publish" in plan.stdout and "to do" in plan.stdout, plan.stderr
    done = cai("run", "pipeline.yaml", cwd=project)
    assert done.returncode == 0, done.stderr[-2000:]
    published = project / "runs" / "r" / "publish"
    assert sorted(p.name for p in published.iterdir()) == ["README.md", "constitution", "pipeline.yaml", "prefs", "prompts", "sft"]
    assert (published / "pipeline.yaml").read_text() == (project / "pipeline.yaml").read_text()
    entry = json.loads((project / "runs" / "r" / "manifest.json").read_text())["pipeline"]["publish"]
    assert entry["command"][:4] == ["cai", "publish", "runs/r", "--out"] and entry["status"] == "done"


def test_red_team_prompts_comparisons_and_human_pairs_publish_too(tmp_path):
    """Hand-written rows: each loads with its nested fields, and the card names the models."""
    from datasets import load_dataset

    run = hand_written_run(tmp_path / "run")
    result = publish(run.path, tmp_path / "out", include=["prompts", "eval_policies", "prefs"])
    assert result.written == {"prefs": {"train": 1}, "prompts": {"train": 3}, "eval_policies": {"train": 2}}
    prompts = load_dataset(str(tmp_path / "out"), "prompts", split="train")
    assert prompts["seed_ids"][0] == ["a", "b"] and prompts[0]["provenance"]["model"] == "judge"
    assert load_dataset(str(tmp_path / "out"), "eval_policies", split="train")["policies"][0] == ["base", "sl"]
    human = load_dataset(str(tmp_path / "out"), "prefs", split="train")[0]
    assert human["judgements"] == [] and human["source"] == "human" and json.loads(human["provenance"]["sampling"]) == {}
    # published again with one more prompt, the same folder loads the new rows (not those cached)
    write_jsonl(run.file("prompts.jsonl"), [RedTeamPrompt(id=f"redteam-{i}", prompt=f"How do I pick lock {i}?",
                                                          seed_ids=["a"], provenance=PROV) for i in range(4)])
    publish(run.path, tmp_path / "out", include=["prompts", "eval_policies", "prefs"])
    assert load_dataset(str(tmp_path / "out"), "prompts", split="train").num_rows == 4
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| sl-cai | eval_policies |" in card and "| redteam_expand | dropped: near_duplicate | 2 |" in card
    assert "/home/me" not in card and "No stage of this run read a constitution." in card


def test_model_names_and_scrubbed_text():
    assert public_name("smollm2-135m-instruct") == "smollm2-135m-instruct"
    assert public_name("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert public_name("/home/me/models/sl-cai") == "sl-cai" and public_name("runs/walk/models/sl-cai") == "sl-cai"
    assert scrub("cai generate --model /home/me/m --server http://10.0.0.1:8000/v1 --rounds 2") == \
        "cai generate --model m --server REDACTED_URL --rounds 2"
    assert scrub("harmful/unethical, 1/2, sk-abcdefghijklmnopqrstu") == "harmful/unethical, 1/2, REDACTED_KEY"
