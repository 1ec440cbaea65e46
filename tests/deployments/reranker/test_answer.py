"""Parsing and repairing the reranker's answers (pure logic)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pardus.deployments.reranker.answer import UnusableAnswer, parse_answer, response_schema


def answer(scores, reason="fits", **extra) -> str:
    return json.dumps({"scores": scores, "reason": reason, **extra})


def test_scores_order_candidates_and_ties_keep_retrieval_order():
    parsed = parse_answer(answer({"1": 3, "2": 9, "3": 3, "4": 10}), 4)
    assert parsed.order == [3, 1, 0, 2] and parsed.valid and parsed.reason == "fits"


def test_missing_and_invented_scores_are_repaired_and_counted():
    parsed = parse_answer(answer({"2": 5, "9": 10, "3": "x", "1": 11}), 4)
    assert parsed.order == [1, 0, 2, 3]
    assert not parsed.valid and len(parsed.repairs) == 4


def test_ranking_lists_are_repaired_into_a_permutation():
    # the notebook's failure: 9 candidates, one lost, one repeated, one invented
    parsed = parse_answer(json.dumps({"ranking": [3, 1, 1, 12, 2, 5, 4, 6, 7, 8],
                                      "reason": "r"}), 9)
    assert parsed.order == [2, 0, 1, 4, 3, 5, 6, 7, 8]
    assert sorted(parsed.order) == list(range(9)) and len(parsed.repairs) == 3


@pytest.mark.parametrize("text", ["", "not json", "[1,2]", '{"reason": "x"}', '{"scores": {}}',
                                  '{"scores": {"7": 1}}', '{"ranking": ["a"]}', "null"])
def test_unusable_answers_raise(text):
    with pytest.raises(UnusableAnswer):
        parse_answer(text, 3)


def test_control_characters_inside_strings_are_tolerated_and_cleaned():
    parsed = parse_answer('{"scores": {"1": 2, "2": 1}, "reason": "spots\x16 and\x0bstripes"}', 2)
    assert parsed.valid and parsed.reason == "spots and stripes"


def test_special_tokens_a_model_spells_out_are_not_shown():
    text = json.dumps({"scores": {"1": 2, "2": 1}, "caption": "<|image_1|>",
                       "reason": ":<|reserved_26668|><|end|>spots<|reserved_2199|> and stripes"})
    parsed = parse_answer(text, 2)
    assert parsed.reason == ": spots and stripes" and parsed.caption is None


def test_unicode_digits_are_not_candidate_numbers():
    parsed = parse_answer(answer({"²": 5, "1": 3, "2": "٣"}), 2)
    assert parsed.order == [0, 1] and len(parsed.repairs) == 3


def test_missing_reason_is_a_repair():
    parsed = parse_answer(json.dumps({"scores": {"1": 1, "2": 2}}), 2)
    assert parsed.order == [1, 0] and parsed.repairs == ["no reason given"]


@settings(max_examples=300, deadline=None)
@given(k=st.integers(1, 16), data=st.data())
def test_any_json_object_gives_a_complete_permutation_or_unusable(k, data):
    value = st.one_of(st.integers(-3, 20), st.text(max_size=3), st.none(), st.floats(allow_nan=True))
    scores = data.draw(st.dictionaries(st.text(max_size=3) | st.integers(0, 20).map(str), value,
                                       max_size=20))
    ranking = data.draw(st.lists(value, max_size=20))
    payload = data.draw(st.sampled_from([{"scores": scores}, {"ranking": ranking},
                                         {"scores": scores, "ranking": ranking, "reason": 5}]))
    try:
        parsed = parse_answer(json.dumps(payload), k)
    except UnusableAnswer:
        return
    assert sorted(parsed.order) == list(range(k))


def test_schema_requires_every_candidate_and_nothing_else():
    schema = response_schema(3, with_caption=True)
    assert list(schema["properties"]) == ["caption", "scores", "reason"]
    scores = schema["properties"]["scores"]
    assert scores["required"] == ["1", "2", "3"] and scores["additionalProperties"] is False
    assert "caption" not in response_schema(3, with_caption=False)["properties"]
