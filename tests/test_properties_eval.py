"""Property-based tests (Hypothesis) of the benchmarks (minimllm.evaluate) and the chat messages
(minimllm.chat): valid answers, labels and scores give scores in their documented range that agree
with a direct count; invalid ones (a string where a list goes, "yes" / "no" strings as labels,
mismatched lengths, NaN scores, broken scenes) raise ValueError / TypeError from minimllm's own
code, with a message that names the argument. The helpers come from tests/test_properties.py."""

import itertools

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from test_properties import call_rejects, seeds

from minimllm.chat import check_messages, image_turn, vqa_messages
from minimllm.data import sample_scene
from minimllm.evaluate import (
    answer_prior,
    auroc,
    binary_metrics,
    final_answer,
    normalize_answer,
    pair_frequencies,
    position_precision,
    prior_accuracy,
    vqa_accuracy,
)

words = st.sampled_from(["red", "Red.", "two", "2", "the circle", "yes", "no", "a star", ""])
qtypes = st.sampled_from(["color", "shape", "count", "existence"])
not_text = st.one_of(st.none(), st.integers(), st.floats(), st.lists(st.text(), max_size=2))


@st.composite
def answered(draw, min_size=1):
    """(predictions, answers, qtypes) of one length."""
    n = draw(st.integers(min_size, 12))
    return tuple(draw(st.lists(s, min_size=n, max_size=n)) for s in (words, words, qtypes))


# --- answers ------------------------------------------------------------------------------
@given(answered())
def test_vqa_accuracy_counts_exact_matches_per_type(data):
    predictions, answers, types = data
    scores = vqa_accuracy(predictions, answers, types)
    assert set(scores) == {"overall", *types}
    right = [normalize_answer(final_answer(p)) == normalize_answer(a)
             for p, a in zip(predictions, answers)]
    assert scores["overall"] == pytest.approx(np.mean(right))
    for t in set(types):
        assert 0 <= scores[t] <= 1
        assert scores[t] == pytest.approx(np.mean([r for r, q in zip(right, types) if q == t]))


@given(answered(), st.integers(0, 2), st.sampled_from(["string", "short", "not text"]))
def test_bad_answer_lists_are_refused_by_name(data, which, how):
    args = list(data)
    name = ("predictions", "answers", "qtypes")[which]
    if how == "string":
        args[which] = "red"
    elif how == "short":
        assume(len(args[which]) > 1)
        args[which] = args[which][:-1]
        name = "need as many"
    else:
        args[which] = [*args[which][:-1], 3]
    call_rejects(lambda: vqa_accuracy(*args), [name])


@given(answered())
def test_the_answer_prior_scores_what_it_counts(data):
    _, answers, types = data
    prior = answer_prior(answers, types)
    assert set(prior) == set(types)
    scores = prior_accuracy(prior, answers, types)
    for t in set(types):  # the most frequent answer of a type is right as often as it occurs
        counts = [normalize_answer(a) for a, q in zip(answers, types) if q == t]
        assert scores[t] == pytest.approx(max(counts.count(c) for c in counts) / len(counts))


@given(not_text)
def test_a_reply_that_is_not_a_string_is_refused(bad):
    call_rejects(lambda: normalize_answer(bad), ["answer"])
    call_rejects(lambda: final_answer(bad), ["reply"])


# --- POPE's yes / no metrics --------------------------------------------------------------
binary = st.lists(st.booleans(), min_size=1, max_size=30)


@given(binary, st.data())
def test_binary_metrics_agree_with_a_direct_count(labels, data):
    preds = data.draw(st.lists(st.booleans(), min_size=len(labels), max_size=len(labels)))
    m = binary_metrics(labels, [int(p) for p in preds])  # 0 / 1 as well as booleans
    pairs = list(zip(labels, preds))
    tp, fp = pairs.count((True, True)), pairs.count((False, True))
    assert m["accuracy"] == pytest.approx(np.mean([a == b for a, b in pairs]))
    assert m["yes_ratio"] == pytest.approx(np.mean(preds))
    assert m["precision"] == pytest.approx(tp / (tp + fp) if tp + fp else 0.0)
    assert all(0 <= v <= 1 for v in m.values())


@given(binary, st.sampled_from(["strings", "short", "twos", "matrix"]))
def test_bad_labels_are_refused_by_name(labels, how):
    preds = list(labels)
    bad = {"strings": ["yes" if x else "no" for x in labels], "short": labels[:-1],
           "twos": [2 * x for x in labels], "matrix": [labels]}[how]
    assume(how != "twos" or any(labels))
    call_rejects(lambda: binary_metrics(bad, preds), ["labels"])


@given(st.lists(st.tuples(st.booleans(), st.floats(-5, 5)), min_size=2, max_size=30))
def test_auroc_is_the_share_of_positive_negative_pairs_ranked_right(points):
    labels, scores = zip(*points)
    assume(any(labels) and not all(labels))
    pos = [s for lab, s in points if lab]
    neg = [s for lab, s in points if not lab]
    wins = [1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)]
    assert auroc(labels, scores) == pytest.approx(np.mean(wins))


@given(binary, st.sampled_from([float("nan"), float("inf"), "high"]))
def test_auroc_refuses_scores_that_are_not_finite_numbers(labels, bad):
    scores = [0.5] * (len(labels) - 1) + [bad]
    call_rejects(lambda: auroc(labels, scores), ["scores"])


def test_auroc_refuses_one_score_per_label_missing():
    call_rejects(lambda: auroc([1, 0, 1], [0.2, 0.4]), ["scores", "3 labels"])


# --- captions and scenes ------------------------------------------------------------------
@given(seeds, st.integers(1, 4))
def test_position_precision_is_one_for_the_scenes_own_positions(seed, n):
    scene = sample_scene(np.random.default_rng(seed), min_objects=n, max_objects=n)
    caption = " and ".join(f"a {o['color']} {o['shape']} in the {o['position']}"
                           for o in scene["objects"])
    assert position_precision([scene], [caption]) == 1.0
    assert pair_frequencies([scene])[0] in {(o["color"], o["shape"]) for o in scene["objects"]}


@given(seeds)
def test_bad_scenes_and_caption_lists_are_refused(seed):
    scene = sample_scene(np.random.default_rng(seed))
    call_rejects(lambda: position_precision([scene], "a red circle"), ["captions"])
    call_rejects(lambda: position_precision([scene, scene], ["a red circle"]), ["2 scenes"])
    call_rejects(lambda: position_precision([{"objects": []}], ["x"]), ["objects"])
    call_rejects(lambda: pair_frequencies([{"things": scene["objects"]}]), ["objects"])


# --- chat messages ------------------------------------------------------------------------
@given(st.text(max_size=20), st.one_of(st.none(), st.text(max_size=10)), st.text(max_size=10))
def test_vqa_messages_are_a_valid_conversation(question, answer, prompt):
    messages = vqa_messages(question, answer, prompt)
    check_messages(messages)
    assert messages[0]["content"].endswith(question + prompt)
    assert len(messages) == 1 + (answer is not None)


@given(not_text, st.integers(0, 2))
def test_a_question_or_answer_that_is_not_a_string_is_refused_by_name(bad, where):
    assume(bad is not None)  # None is no answer, which is allowed
    args = ["what color is the circle?", "red", " answer briefly."]
    args[where] = bad
    call_rejects(lambda: vqa_messages(*args), [("question", "answer", "format_prompt")[where]])
    call_rejects(lambda: image_turn(bad), ["text"])
