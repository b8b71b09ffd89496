"""Property-based tests of the caption scorers (chapter 05's captioning.py): what they read from
any text, the reference caption scoring perfectly, and bad input refused by name."""
from hypothesis import given
from hypothesis import strategies as st
from test_properties import call_rejects, seeds

from minimllm.captioning import CAPTION_STYLE, caption_accuracy, parse_caption
from minimllm.data import COLORS, POSITIONS, SHAPES, SIZES, make_caption, sample_scene
from minimllm.evaluate import position_precision

words = st.sampled_from([*COLORS, *SHAPES, *SIZES, "a", "the", "in", "and", ",", ".", "top",
                         "left", "center", "above", "xyz"])
texts = st.lists(words, max_size=30).map(" ".join) | st.text(max_size=80)


@given(texts)
def test_any_text_parses_to_mentions_from_the_vocabulary(text):
    for m in parse_caption(text):
        assert m["color"] in COLORS and m["shape"] in SHAPES
        assert m["size"] in (*SIZES, None) and m["position"] in (*POSITIONS, None)


@given(seeds, st.integers(1, 4))
def test_the_reference_caption_scores_perfectly(seed, n):
    scene = sample_scene(seed, n_objects=n)
    caption = make_caption(scene, style=CAPTION_STYLE)
    scores = caption_accuracy([scene], [caption])
    assert scores["accuracy"] == scores["named"] == scores["position"] == 1.0
    assert scores["hallucinated"] == 0.0 and scores["exact"] == 1.0
    assert position_precision([scene], [caption]) == 1.0
    assert {(m["color"], m["shape"]) for m in parse_caption(caption)} == {
        (o["color"], o["shape"]) for o in scene["objects"]}


@given(st.lists(st.tuples(seeds, texts), min_size=1, max_size=5))
def test_scores_are_shares(pairs):
    scenes = [sample_scene(seed) for seed, _ in pairs]
    scores = caption_accuracy(scenes, [text for _, text in pairs])
    assert all(0.0 <= v <= 1.0 for v in scores.values()), scores
    assert 0.0 <= position_precision(scenes, [text for _, text in pairs]) <= 1.0


@given(seeds, st.integers(0, 3).filter(lambda k: k != 2))
def test_scenes_and_captions_of_different_lengths_are_refused(seed, k):
    scenes = [sample_scene(seed)] * 2
    call_rejects(lambda: caption_accuracy(scenes, ["a red circle."] * k), ("scenes", "captions"))
    call_rejects(lambda: position_precision(scenes, ["a red circle."] * k))
