"""Random and malformed inputs: every case ends in parsed records or a clear error."""

import gzip
import json
import os

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cai.constitution.schema import load_constitution
from cai.core.errors import CaiError
from cai.io.inputs import load_conversations, load_pairs, load_prompts

SETTINGS = settings(max_examples=int(os.environ.get("CAI_HYPOTHESIS_EXAMPLES", "150")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
# Rows that look like what users feed: the keys the loaders look at, with anything as values.
rows = st.dictionaries(
    st.sampled_from(["id", "prompt", "messages", "chosen", "rejected", "question", "role", "content"]) | st.text(max_size=8),
    json_values | st.lists(st.dictionaries(st.sampled_from(["role", "content"]), json_values, max_size=2), max_size=3)
    | st.sampled_from(["\n\nHuman: hi\n\nAssistant: yo", "Human: x", "\n\nAssistant: only", ""]),
    max_size=5,
)


def loads_cleanly(path):
    """All three loaders either parse or raise the project's own error."""
    for load in (load_prompts, load_pairs, load_conversations):
        try:
            records, problems = load(path)
        except CaiError:
            continue
        assert all(p.line is not None for p in problems)


@SETTINGS
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".jsonl", ".json", ".csv", ".jsonl.gz", ".parquet", ".txt"]))
def test_random_bytes(tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("bytes") / f"input{suffix}"
    path.write_bytes(data)
    loads_cleanly(path)


@SETTINGS
@given(lines=st.lists(rows | json_values, max_size=6), gz=st.booleans())
def test_random_json_lines(tmp_path_factory, lines, gz):
    text = "".join(json.dumps(line) + "\n" for line in lines).encode()
    path = tmp_path_factory.mktemp("lines") / ("input.jsonl.gz" if gz else "input.jsonl")
    path.write_bytes(gzip.compress(text) if gz else text)
    loads_cleanly(path)
    (path.parent / "input.json").write_text(json.dumps(lines))
    loads_cleanly(path.parent / "input.json")


principle = st.dictionaries(
    st.sampled_from(["id", "critique", "revision", "question", "weight", "critque"]),
    json_values | st.floats() | st.text(max_size=10), max_size=5,
)
constitutions = st.dictionaries(
    st.sampled_from(["name", "version", "few_shot", "critique_revision", "preference", "extra"]),
    json_values | st.lists(principle | json_values, max_size=4)
    | st.dictionaries(st.sampled_from(["critique_revision", "preference"]), st.text(max_size=12) | json_values, max_size=2),
    max_size=6,
)


@SETTINGS
@given(data=constitutions)
def test_random_constitutions(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("c") / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        loaded = load_constitution(path)
    except CaiError as e:
        assert str(e)
    else:
        assert loaded.constitution.critique_revision


@SETTINGS
@given(text=st.text(max_size=300))
def test_random_yaml_text(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("t") / "c.yaml"
    path.write_text(text)
    try:
        load_constitution(path)
    except CaiError as e:
        assert str(e)


def test_alias_bomb_and_code_tags(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    bomb.write_text("\n".join(levels) + "\ncritique_revision: *a8\n")
    code = tmp_path / "code.yaml"
    code.write_text("name: !!python/object/apply:os.system ['echo pwned']\ncritique_revision: []\n")
    deep = tmp_path / "deep.yaml"
    deep.write_text("critique_revision: " + "[" * 5000 + "]" * 5000 + "\n")
    for path in (bomb, code, deep):
        try:
            load_constitution(path)
        except CaiError as e:
            assert str(e)
