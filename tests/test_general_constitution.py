"""The second shipped constitution: one broad principle ("what is best for people") for critiques and
for the judge, so users can compare a general constitution with the specific default."""


from cli_run import invoke

from cai.constitution.schema import load_constitution
from cai.data import DEFAULT_CONSTITUTION, GENERAL_CONSTITUTION


def test_general_constitution_has_one_broad_principle_per_section():
    general = load_constitution(GENERAL_CONSTITUTION).constitution
    default = load_constitution(DEFAULT_CONSTITUTION).constitution
    assert [p.id for p in general.critique_revision] == [p.id for p in general.preference] == ["best-for-people"]
    assert "best for people" in general.critique_revision[0].critique
    assert "best for people" in general.preference[0].question
    # the same worked examples as the default, so that only the principles differ
    assert general.critique_examples == default.critique_examples
    assert general.preference_examples == default.preference_examples


def test_constitution_check_accepts_it():
    done = invoke(["constitution", "check", str(GENERAL_CONSTITUTION)])
    assert done.exit_code == 0, done.output
    assert "cai-general" in done.output and "1 principles: best-for-people" in done.output
