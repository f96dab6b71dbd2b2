from pathlib import Path

import pytest
from cli_run import invoke

from cai.core.errors import CaiError
from cai.data import DEFAULT_CONSTITUTION

ROOT = Path(__file__).resolve().parent.parent


def test_default_constitution_is_complete(default_constitution):
    c = default_constitution.constitution
    assert len(c.critique_revision) >= 12
    assert len(c.preference) >= 12
    for section in (c.critique_revision, c.preference):
        ids = [p.id for p in section]
        assert len(ids) == len(set(ids))
    assert {"violence", "self-harm", "privacy", "evasiveness"} <= {p.id for p in c.critique_revision}
    assert c.critique_examples and c.preference_examples
    assert len(default_constitution.sha256) == 64


def test_every_problem_is_reported_with_its_line(tmp_path, problems_of):
    problems = problems_of(
        """\
name: broken
critique_revision:
  - id: a
    critque: typo
    revision: fine
  - id: a
    critique: ""
    revision: fine
    weight: -1
preference:
  - id: p
    question: one
    question: two
""",
    )
    text = "\n".join(problems)
    assert "c.yaml:4: unknown key 'critque' (did you mean 'critique'?)" in text
    assert "c.yaml:3: missing key 'critique'" in text
    assert "c.yaml:6: critique_revision: duplicate id 'a'" in text
    assert "c.yaml:7:" in text and "at least 1 character" in text
    assert "c.yaml:9:" in text and "greater than 0" in text
    assert "c.yaml:13: duplicate key 'question'" in text
    assert len(problems) == 6


def test_yaml_syntax_error_names_the_line(tmp_path, problems_of):
    (problem,) = problems_of("critique_revision:\n  - id: a\n    critique: [unclosed\n")
    assert problem.startswith(str(tmp_path / "c.yaml")) and "YAML syntax error" in problem


def test_missing_few_shot_file_is_an_error(tmp_path, problems_of):
    (problem,) = problems_of(
        "few_shot:\n  critique_revision: nowhere.yaml\n"
        "critique_revision:\n  - {id: a, critique: c, revision: r}\n",
    )
    assert "nowhere.yaml: file not found" in problem


def test_bad_few_shot_example_names_its_file_and_line(tmp_path, problems_of):
    (tmp_path / "ex.yaml").write_text("- prompt: [{role: user, content: hi}]\n  response: ok\n  stepz: []\n")
    problems = problems_of(
        "few_shot:\n  critique_revision: ex.yaml\ncritique_revision:\n  - {id: a, critique: c, revision: r}\n",
    )
    assert any("ex.yaml:3: unknown key 'stepz' (did you mean 'steps'?)" in p for p in problems)


def test_check_command_exit_codes(tmp_path):
    ok = invoke(["constitution", "check", str(DEFAULT_CONSTITUTION)])
    assert ok.exit_code == 0, ok.output
    assert "14 principles" in ok.output
    assert "tags:              harmless 13, helpful 10" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("critique_revision:\n  - id: a\n    critique: c\n")
    result = invoke(["constitution", "check", str(bad)])
    assert result.exit_code == 1
    assert "missing key 'revision'" in result.output


def test_tags_select_the_principles_of_each_group(default_constitution):
    c = default_constitution.constitution
    by_tag = c.principles_by_tag(["harmless", "helpful"])
    assert list(by_tag) == ["harmless", "helpful"]
    harmless, helpful = ({p.id for p in ps} for ps in by_tag.values())
    assert {"no-violence", "privacy", "less-harmful"} <= harmless
    assert {"does-what-was-asked", "informative", "not-evasive"} <= helpful
    assert "not-evasive" not in harmless and "no-violence" not in helpful
    assert harmless | helpful == {p.id for p in c.preference}  # every question scores something
    assert all(tag in p.tags for tag, ps in by_tag.items() for p in ps)
    with pytest.raises(CaiError, match="no preference principle is tagged 'honesty'.*tags: harmless, helpful"):
        c.principles_by_tag(["helpful", "honesty"])


def test_a_tag_must_be_a_lowercase_identifier(tmp_path, problems_of):
    problems = problems_of(
        """\
critique_revision:
  - {id: a, critique: c, revision: r}
preference:
  - id: p
    question: q
    tags: [helpful, Not Harmful]
""",
    )
    assert len(problems) == 1
    assert "c.yaml:6: preference.0.tags.1:" in problems[0] and "lowercase identifier" in problems[0]
    assert "'Not Harmful'" in problems[0]
