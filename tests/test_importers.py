import json

from cli_run import invoke

from cai.constitution.importers import clean
from cai.constitution.schema import load_constitution


def write_anthropic(folder):
    """Small files in the shapes of the paper's prompts/ folder (texts written for this test)."""
    folder.mkdir()
    (folder / "CritiqueRevisionInstructions.json").write_text(json.dumps({
        "harmful0": {
            "prompt": ["\n\nCritiqueRequest: Say how the last answer could hurt someone.\n\nCritique:"],
            "edit_request": "\n\nRevisionRequest: Rewrite it so that it hurts nobody.\n\nRevision:",
        },
        "honest1": {
            "prompt": ["\n\nCritiqueRequest: Was the answer truthful?\n\nCritique:"],
            "edit_request": "\n\nRevisionRequest: Rewrite it truthfully.\n\nRevision:",
        },
    }))
    (folder / "RLMadisonInstructions.json").write_text(json.dumps([
        "\nPick the kinder answer. Options:", "\nWhich answer is more honest? Options:",
    ]))
    (folder / "CritiqueRevisionFewShotPrompts.json").write_text(json.dumps([
        "\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: Help me cheat.\n\nAssistant: Sure, copy it."
        "\n\nCritiqueRequest: Is it harmful?\n\nCritique: It helps cheating."
        "\n\nRevisionRequest: Fix it.\n\nRevision: I'd rather help you study.\n\nHuman:"
    ]))
    (folder / "RLMadisonFewShotPrompts.json").write_text(json.dumps([
        {"prompt": "\n\nHuman: Hurt him?\n\nAssistant:", "corrects": ["No."], "incorrects": ["Yes."]}
    ]))


def test_clean_strips_markers():
    assert clean("\n\nCritiqueRequest: Do X.\n\nCritique:") == "Do X."
    assert clean("\nPick one. Options:") == "Pick one."


def test_import_anthropic(tmp_path):
    write_anthropic(tmp_path / "prompts")
    out = tmp_path / "anthropic.yaml"
    result = invoke(["constitution", "import", "--from", "anthropic", str(tmp_path / "prompts"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    c = load_constitution(out).constitution
    assert [(p.id, p.critique, p.revision) for p in c.critique_revision] == [
        ("harmful0", "Say how the last answer could hurt someone.", "Rewrite it so that it hurts nobody."),
        ("honest1", "Was the answer truthful?", "Rewrite it truthfully."),
    ]
    assert [p.question for p in c.preference] == ["Pick the kinder answer.", "Which answer is more honest?"]
    (example,) = c.critique_examples
    assert [m.content for m in example.prompt] == ["Hi", "Hello.", "Help me cheat."]
    assert example.response == "Sure, copy it."
    assert example.steps[0].revision == "I'd rather help you study."
    (judged,) = c.preference_examples
    assert (judged.better, judged.worse) == ("No.", "Yes.")


def test_import_hf(tmp_path):
    src = tmp_path / "hf.json"
    src.write_text(json.dumps({
        "constitutions": [{"critic": "Is it rude?", "revision": "Make it polite."}],
        "system_chat": [[
            {"role": "user", "content": "Insult my boss."},
            {"role": "assistant", "content": "He is an idiot."},
            {"role": "user", "content": "Is it rude?"},
            {"role": "assistant", "content": "Yes."},
            {"role": "user", "content": "Make it polite."},
            {"role": "assistant", "content": "I'd rather help you talk to him."},
        ]],
    }))
    out = tmp_path / "hf.yaml"
    result = invoke(["constitution", "import", "--from", "hf", str(src), "-o", str(out)])
    assert result.exit_code == 0, result.output
    c = load_constitution(out).constitution
    assert c.critique_revision[0].critique == "Is it rude?"
    assert c.critique_examples[0].response == "He is an idiot."
    assert c.critique_examples[0].steps[0].critique == "Yes."


def test_import_errors_are_one_line(tmp_path):
    result = invoke(["constitution", "import", "--from", "anthropic", str(tmp_path), "-o", str(tmp_path / "x.yaml")])
    assert result.exit_code != 0
    result = invoke(["constitution", "import", "--from", "nope", str(tmp_path), "-o", str(tmp_path / "x.yaml")])
    assert result.exit_code != 0
