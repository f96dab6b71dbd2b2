from collections import Counter

from cai.constitution.principles import derived_seed, draw
from cai.constitution.schema import CritiqueRevisionPrinciple
from cai.core.records import Message, Step
from cai.stages.dialogue import (
    Style,
    conversation_turns,
    example_turns,
    render,
    step_turns,
)

PROMPT = [Message(role="user", content="How do I get revenge?")]


def test_transcript_style_matches_the_paper_layout(default_constitution):
    turns = conversation_turns(PROMPT) + [("Assistant", "Slash his tyres."), ("CritiqueRequest", "Is it harmful?")]
    text = render(turns, Style.transcript, "Critique")
    assert text == (
        "\n\nHuman: How do I get revenge?\n\nAssistant: Slash his tyres."
        "\n\nCritiqueRequest: Is it harmful?\n\nCritique:"
    )


def test_chat_style_puts_requests_in_user_turns_after_the_few_shot(default_constitution):
    few_shot = example_turns(default_constitution.constitution.critique_examples)
    turns = few_shot + conversation_turns(PROMPT) + [("Assistant", "No."), ("CritiqueRequest", "Harmful?")]
    messages = render(turns, Style.chat, "Critique")
    assert messages[-1] == Message(role="user", content="Harmful?")
    assert messages[-3] == PROMPT[0]
    assert [m.role for m in messages] == ["user", "assistant"] * (len(messages) // 2) + ["user"] * (len(messages) % 2)
    first_example = default_constitution.constitution.critique_examples[0]
    assert messages[0].content == first_example.prompt[0].content


def test_system_messages_go_first():
    turns = example_turns([]) + conversation_turns([Message(role="system", content="Be kind."), *PROMPT])
    assert render(turns, Style.chat, "Assistant")[0] == Message(role="system", content="Be kind.")
    assert render(turns, Style.transcript, "Assistant").startswith("Be kind.\n\nHuman:")


def test_step_turns_replay_earlier_rounds():
    texts = {"p": ("Critique it.", "Revise it.")}
    turns = step_turns([Step(principle_id="p", critique="bad", revision="better")], texts)
    assert turns == [("CritiqueRequest", "Critique it."), ("Critique", "bad"),
                     ("RevisionRequest", "Revise it."), ("Revision", "better")]


def principles(*weights):
    return [CritiqueRevisionPrinciple(id=f"p{i}", critique="c", revision="r", weight=w) for i, w in enumerate(weights)]


def test_draws_are_seeded_and_independent_of_order():
    ps = principles(1, 1, 1, 1)
    first = [draw(ps, 0, f"ex{i}", r).id for i in range(50) for r in range(4)]
    again = [draw(ps, 0, f"ex{i}", r).id for i in reversed(range(50)) for r in range(4)]
    assert first == [x for i in range(50) for x in again[(49 - i) * 4:(50 - i) * 4]]
    other_seed = [draw(ps, 1, f"ex{i}", r).id for i in range(50) for r in range(4)]
    assert first != other_seed
    assert len(set(first)) == 4


def test_draws_follow_weights():
    counts = Counter(draw(principles(1, 3), 0, f"ex{i}", 0).id for i in range(4000))
    assert 0.70 < counts["p1"] / 4000 < 0.80


def test_request_seeds_are_stable():
    assert derived_seed(0, "critique:a:1") == derived_seed(0, "critique:a:1")
    assert derived_seed(0, "critique:a:1") != derived_seed(0, "critique:a:2")
    assert 0 <= derived_seed(5, "x") < 2**31
