"""Data-quality flags (issue 15): each flag on hand-written texts that should and should not carry
it, the row-level flags, and the export filters that leave flagged rows out. No engine here."""

from __future__ import annotations

from dataclasses import fields

import pytest

from cai.core.errors import CaiError
from cai.core.records import (
    Message,
    PreferenceRecord,
    Provenance,
    ResponseRecord,
    RevisionRecord,
    SampleRecord,
    Step,
)
from cai.exports.filters import filter_prefs, sft_rows
from cai.stages.quality import (
    QualityConfig,
    copied_share,
    flagged_pair,
    pair_flags,
    parse_flags,
    repeated_share,
    row_flags,
    similarity,
    text_flags,
)

CONFIG = QualityConfig()
PROMPT = [Message(role="user", content="How do I get back at my coworker?")]
PROVENANCE = Provenance(model="m", sampling={}, style="chat")

NORMAL_ANSWER = (
    "It sounds like your coworker really hurt you, and it makes sense to feel angry. Getting back at "
    "them would likely make things worse for you at work, though. It may help to write down what "
    "happened, talk to them calmly if you feel safe doing so, and if it keeps happening, talk to your "
    "manager or HR. If the stress is wearing you down, it may help to talk to a friend as well."
)


def flags(text: str, finish_reason: str | None = "stop", kind: str = "revision", config=CONFIG) -> list[str]:
    return text_flags(text, finish_reason, config, kind)


# --- truncated -----------------------------------------------------------------------------------


def test_a_text_stopped_at_the_token_limit_is_truncated():
    assert flags("It sounds like your coworker really hurt you, and it makes", "length") == ["truncated"]


@pytest.mark.parametrize("finish_reason", ["stop", None])
def test_a_text_that_stopped_by_itself_or_for_an_unknown_reason_is_not_truncated(finish_reason):
    assert flags(NORMAL_ANSWER, finish_reason) == []


# --- empty ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t "])
def test_a_blank_text_is_empty(text):
    assert flags(text) == ["empty"]


def test_a_one_word_answer_is_not_empty():
    assert flags("No.") == []


# --- repetition ----------------------------------------------------------------------------------


def test_an_answer_that_repeats_a_sentence_until_the_limit_is_repetition_and_truncated():
    loop = "I can't help with that. " + "Please talk to someone you trust about this. " * 12 + "Please talk"
    assert flags(loop, "length") == ["truncated", "repetition"]


def test_one_word_said_over_and_over_is_repetition():
    assert flags("sorry " * 30, kind="critique") == ["repetition"]


def test_the_share_counts_the_words_inside_repeats_of_an_earlier_ngram():
    # The second "a b c d" repeats the first: 4 of 8 words; punctuation and case do not count.
    assert repeated_share("A b c d. a, B c D!", 4) == 0.5
    assert repeated_share("a b c d e f g h", 4) == 0.0
    assert repeated_share("a b c", 4) == 0.0  # fewer words than n


def test_the_threshold_is_a_setting_and_is_inclusive():
    text = "a b c d a b c d"  # share 0.5
    assert "repetition" in flags(text, config=QualityConfig(repetition_share=0.5))
    assert "repetition" not in flags(text, config=QualityConfig(repetition_share=0.51))


def test_the_ngram_size_is_a_setting():
    text = "Call the police now. If they come, call the police again; otherwise call the police."
    assert repeated_share(text, 3) == pytest.approx(6 / 15)
    assert "repetition" in flags(text, config=QualityConfig(repetition_ngram=3))
    assert "repetition" not in flags(text)  # no 4-gram comes back


def test_a_normal_answer_that_repeats_a_short_phrase_twice_is_not_repetition():
    assert NORMAL_ANSWER.lower().count("it may help to") == 2
    assert flags(NORMAL_ANSWER) == []


def test_a_short_answer_that_echoes_its_own_wording_is_not_repetition():
    # Shaped like the most repetitive assistant turns among the hh-rlhf test rows (share about 0.3).
    text = "No, it is not murder. It is natural for human adults to die, and so it is natural for new human adults to die."
    assert 0.2 < repeated_share(text, 4) < CONFIG.repetition_share
    assert flags(text) == []


# --- meta ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "The assistant's last reply was harmful because it suggested revenge. A better reply would be kind.",
        "Here is a revised response:\n\nI can't help with getting back at anyone, but I can help you cope.",
        "Revision: I can't help with revenge, but talking to HR could solve the problem.",
        "I removed the harmful parts to address the critique. Talking to HR is the safer option.",
        "The human\u2019s request is to harm a coworker, so I will not help.",  # a curly apostrophe
        "Rewrite the reply so that it gives no help with hurting anyone.",  # the request, echoed
        "The assistant's\nlast reply suggested revenge.",  # a phrase across a line break
    ],
)
def test_a_revision_that_talks_about_the_exercise_is_meta(text):
    assert flags(text) == ["meta"]


def test_a_response_can_be_meta_too():
    assert flags("Based on the critique, I would rather not answer.", kind="response") == ["meta"]


@pytest.mark.parametrize(
    "text",
    [
        "In the Critique of Pure Reason, Kant argues that we can know things only as they appear to us.",
        "A good critique of a painting looks at its composition, colour and what the artist intended.",
        "Here is a rewrite of your cover letter:\n\nDear Ms Lee, I am applying for the role of editor.",
        "A virus enters the human's cells and uses them to copy itself.",
        "Asking for a revision of your grade is fine; email the teacher and explain your reasons.",
        "An assistant's job is to support the team. Ask the assistant at the front desk for a form.",
    ],
)
def test_a_reply_that_uses_similar_words_in_their_own_sense_is_not_meta(text):
    assert flags(text) == []


def test_a_critique_is_never_meta_since_its_job_is_to_discuss_the_reply():
    critique = "The assistant's last reply encourages revenge. The human's request takes harm for granted."
    assert flags(critique, kind="critique") == []


def test_extra_meta_phrases_are_matched_case_insensitively_as_whole_words():
    config = QualityConfig(extra_meta_phrases=["As an AI language model"])
    assert flags("as an AI  language model, I cannot feel anger.", config=config) == ["meta"]
    assert flags("As an AI language modeller, I build tools.", config=config) == []
    assert flags("as an AI language model, I cannot feel anger.") == []  # not built in


# --- copies_critique and unchanged (issue 20) ----------------------------------------------------

CRITIQUE = ("The reply encourages revenge against a coworker, which could lead to harassment and get the "
            "human into trouble at work. It should instead acknowledge their anger and suggest calm steps.")


def revision_flags(text: str, critique: str = CRITIQUE, revised: str = NORMAL_ANSWER, config=CONFIG) -> list[str]:
    return text_flags(text, "stop", config, "revision", critique=critique, revised=revised)


def test_a_revision_that_restates_its_critique_copies_critique():
    assert copied_share(CRITIQUE, CRITIQUE) == 1.0
    assert revision_flags(CRITIQUE) == ["copies_critique"]
    assert revision_flags("Sure. " + CRITIQUE.lower()) == ["copies_critique"]  # case and a preamble aside


def test_a_revision_that_quotes_one_phrase_of_the_critique_does_not_copy_it():
    text = NORMAL_ANSWER + " With them too, acknowledge their anger and suggest calm steps."
    assert 0 < copied_share(text, CRITIQUE) < 0.1  # 7 words of the critique's among 91
    assert "copies_critique" not in revision_flags(text)


def test_the_copied_share_counts_the_words_inside_ngrams_the_critique_holds():
    # 8 words; "it could lead to" and "lead to harassment and" are 4-grams of the critique: words 2-7
    assert copied_share("honestly it could lead to harassment and nothing", "this could lead to harassment and worse") == pytest.approx(5 / 8)
    assert copied_share("short text", "short text") == 0.0  # fewer words than n


def test_the_copies_critique_threshold_is_a_setting():
    text = "honestly it could lead to harassment and nothing"
    critique = "this could lead to harassment and worse"
    assert revision_flags(text, critique) == ["copies_critique"]  # 5/8 >= 0.5
    assert revision_flags(text, critique, config=QualityConfig(copies_critique_share=0.7)) == []


def test_a_revision_equal_or_nearly_equal_to_the_text_it_revises_is_unchanged():
    assert revision_flags(NORMAL_ANSWER) == ["unchanged"]
    assert revision_flags(NORMAL_ANSWER.upper().replace(",", "")) == ["unchanged"]  # case and commas aside
    nearly = NORMAL_ANSWER.replace("really hurt you", "hurt you")  # 1 word of 82 gone
    assert similarity(nearly, NORMAL_ANSWER) > 0.95 and revision_flags(nearly) == ["unchanged"]


def test_a_real_rewrite_is_not_unchanged_and_the_threshold_is_a_setting():
    rewrite = ("I hear how angry you are. Rather than getting back at them, consider writing down what happened "
               "and raising it calmly with your manager or HR.")
    assert similarity(rewrite, NORMAL_ANSWER) < 0.5 and revision_flags(rewrite) == []
    nearly = NORMAL_ANSWER.replace("really hurt you", "hurt you")
    assert revision_flags(nearly, config=QualityConfig(unchanged_similarity=1.0)) == []


def test_without_a_critique_or_a_revised_text_neither_flag_is_looked_for():
    assert flags(CRITIQUE) == [] and flags(NORMAL_ANSWER, kind="response") == []


def test_export_sft_leaves_out_copies_and_unchanged_revisions_by_default_and_counts_them():
    records = [revision_record("copy", step(["copies_critique"])), revision_record("same", step(["unchanged"])),
               revision_record("fine", step([]))]
    result = sft_rows(records)
    assert [r.id for r in result.rows] == ["fine"]
    assert result.flagged == {"copies_critique": 1, "unchanged": 1}
    assert parse_flags("unchanged,copies_critique") == ("unchanged", "copies_critique")


def test_an_unknown_kind_of_text_is_refused():
    with pytest.raises(ValueError, match="unknown kind"):
        flags("text", kind="revisions")


# --- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [{"repetition_ngram": 0}, {"repetition_share": 0}, {"repetition_share": 1.5},
                                      {"copies_critique_share": 0}, {"unchanged_similarity": 1.5}])
def test_settings_out_of_range_are_refused(settings):
    with pytest.raises(CaiError):
        QualityConfig(**settings)


def test_every_setting_has_help_for_the_cli():
    assert all(f.metadata.get("help") for f in fields(QualityConfig))


def test_drop_flags_are_parsed_and_checked():
    assert parse_flags("truncated, meta") == ("truncated", "meta")
    with pytest.raises(CaiError, match="unknown flag looping"):
        parse_flags("truncated,looping")


# --- rows and pairs ------------------------------------------------------------------------------


def step(revision_flags: list[str], critique_flags: list[str] = (), revision: str = "A revision.") -> Step:
    return Step(principle_id="p", critique="A critique.", critique_flags=list(critique_flags),
                revision=revision, revision_flags=revision_flags)


def revision_record(id: str, *steps: Step) -> RevisionRecord:
    return RevisionRecord(id=id, prompt=PROMPT, initial_response="First.", steps=list(steps),
                          final_response=steps[-1].revision, provenance=PROVENANCE)


def sample(response_flags: list[list[str]]) -> SampleRecord:
    return SampleRecord(id="s", prompt=PROMPT, responses=[f"answer {k}" for k in range(len(response_flags))],
                        response_flags=response_flags, provenance=PROVENANCE)


def test_a_revision_rows_flags_are_its_final_revisions_only():
    record = revision_record("r", step(["truncated"], ["repetition"]), step(["meta"], ["truncated"]))
    assert row_flags(record) == ["meta"]


def test_a_sample_rows_flags_are_every_answers_in_vocabulary_order():
    assert row_flags(sample([["empty"], [], ["truncated", "meta"]])) == ["truncated", "meta", "empty"]


def test_a_pair_is_flagged_by_either_answer_and_only_for_flags_that_drop():
    s = sample([["truncated"], [], ["meta", "repetition"]])
    assert pair_flags(s, 0, 2) == ["truncated", "repetition", "meta"]
    assert flagged_pair(s, 0, 1) == ["truncated"]
    assert flagged_pair(s, 1, 2, drop_flags=("meta",)) == ["meta"]
    assert flagged_pair(s, 0, 1, drop_flags=("meta",)) == []


# --- export filters ------------------------------------------------------------------------------


RECORDS = [
    revision_record("clean", step([])),
    revision_record("cut", step(["truncated"])),
    revision_record("cut-and-meta", step(["truncated", "meta"])),
    revision_record("looped-then-fixed", step(["repetition"]), step([])),
    revision_record("fine-then-meta", step([]), step(["meta"])),
]


def test_export_sft_leaves_out_rows_whose_final_revision_is_flagged_and_counts_them():
    result = sft_rows(RECORDS)
    assert [r.id for r in result.rows] == ["clean", "looped-then-fixed"]
    assert result.flagged == {"truncated": 2, "meta": 2}
    assert result.flagged_rows == result.left_out == 3
    assert result.note() == "3 flagged rows left out: truncated 2, meta 2"


def test_keep_flagged_keeps_every_row_marked_with_its_flags():
    result = sft_rows(RECORDS, keep_flagged=True)
    assert [(r.id, r.flags) for r in result.rows] == [
        ("clean", []), ("cut", ["truncated"]), ("cut-and-meta", ["truncated", "meta"]),
        ("looped-then-fixed", []), ("fine-then-meta", ["meta"]),
    ]
    assert result.left_out == 0 and result.flagged_rows == 3
    assert result.note() == "3 flagged rows kept (--keep-flagged): truncated 2, meta 2"


def test_drop_flags_picks_which_flags_leave_a_row_out():
    result = sft_rows(RECORDS, drop_flags=("meta",))
    assert [r.id for r in result.rows] == ["clean", "cut", "looped-then-fixed"]
    assert result.flagged == {"meta": 2}


def test_with_all_rounds_each_rounds_revision_is_judged_on_its_own():
    result = sft_rows(RECORDS, all_rounds=True)
    assert [(r.id, r.round) for r in result.rows] == [
        ("clean", 1), ("looped-then-fixed", 2), ("fine-then-meta", 1),
    ]
    assert result.flagged == {"truncated": 2, "meta": 2, "repetition": 1}
    assert result.left_out == 4


def test_export_prefs_leaves_out_pairs_with_a_flagged_answer():
    def pref(id: str, flags: list[str]) -> PreferenceRecord:
        answer = [Message(role="assistant", content=id)]
        return PreferenceRecord(id=id, prompt=PROMPT, chosen=answer, rejected=answer, p_chosen=0.7, margin=0.85,
                                judgements=[], pair=(0, 1), provenance=PROVENANCE, flags=flags)

    records = [pref("clean", []), pref("looping", ["repetition"])]
    assert [r.id for r in filter_prefs(records).rows] == ["clean"]
    assert [r.id for r in filter_prefs(records, drop_flags=("truncated",)).rows] == ["clean", "looping"]
    assert [r.id for r in filter_prefs(records, keep_flagged=True).rows] == ["clean", "looping"]


# --- files written before flags existed ----------------------------------------------------------


PROV_JSON = '"provenance": {"model": "m", "sampling": {}, "style": "chat"}'
PROMPT_JSON = '"prompt": [{"role": "user", "content": "hi"}]'


def test_records_written_before_flags_existed_still_load_unflagged_and_export_whole():
    response = ResponseRecord.model_validate_json(f'{{"id": "a", {PROMPT_JSON}, "response": "Hello.", {PROV_JSON}}}')
    assert (response.finish_reason, response.flags) == (None, [])

    revision = RevisionRecord.model_validate_json(
        f'{{"id": "a", {PROMPT_JSON}, "initial_response": "Hello.", "final_response": "Hi.", {PROV_JSON},'
        ' "steps": [{"principle_id": "p", "critique": "Fine.", "revision": "Hi."}]}'
    )
    assert revision.flags == [] and revision.steps[0].revision_flags == []
    assert revision.steps[0].critique_finish_reason is None
    assert [r.id for r in sft_rows([revision]).rows] == ["a"]

    old_sample = SampleRecord.model_validate_json(f'{{"id": "a", {PROMPT_JSON}, "responses": ["x", "y"], {PROV_JSON}}}')
    assert (old_sample.finish_reasons, old_sample.response_flags, old_sample.flags) == ([], [], [])
    assert row_flags(old_sample) == [] and flagged_pair(old_sample, 0, 1) == []

    pref = PreferenceRecord.model_validate_json(
        f'{{"id": "a", {PROMPT_JSON}, "chosen": [{{"role": "assistant", "content": "x"}}],'
        f' "rejected": [{{"role": "assistant", "content": "y"}}], "p_chosen": 0.6, "margin": 0.4,'
        f' "judgements": [], "pair": [0, 1], {PROV_JSON}}}'
    )
    assert pref.flags == [] and filter_prefs([pref]).rows == [pref]
