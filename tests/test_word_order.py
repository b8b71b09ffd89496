"""scripts/word_order.py: the assistant's descriptions written shape first, and back; the user's
turns and the answers after the description are untouched."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from word_order import ShapeFirstBatches, scored_in_usual_order, shape_first, usual_order  # noqa: E402

from minimllm.assistant import LOOK_PROMPT, TASKS, answer_text  # noqa: E402
from minimllm.captioning import caption_accuracy  # noqa: E402
from minimllm.data import make_caption, make_questions, sample_scene  # noqa: E402


def test_shape_first_moves_the_colour_after_the_shape_in_the_description_only():
    reply = "a large red circle in the top left; what color is the large red circle, so red"
    assert shape_first(reply) == ("a large circle in red in the top left; what color is the "
                                  "large red circle, so red")
    for seed in range(20):
        scene = sample_scene(np.random.default_rng(seed))
        caption = make_caption(scene, style="positions")
        assert usual_order(shape_first(caption)) == caption
        for o in scene["objects"]:
            assert f"{o['size']} {o['shape']} in {o['color']}" in shape_first(caption)


def test_batches_rewrite_the_assistant_turns_alone():
    b = ShapeFirstBatches.__new__(ShapeFirstBatches)
    b.format_prompt, b.answer_style = LOOK_PROMPT, "described"
    for task in TASKS:
        scene = sample_scene(np.random.default_rng(3), min_objects=2, max_objects=2)
        messages = b.messages(task, scene, np.random.default_rng(0))
        usual = b.__class__.__mro__[1].messages(b, task, scene, np.random.default_rng(0))
        for m, u in zip(messages, usual):
            assert m["content"] == (shape_first(u["content"]) if m["role"] == "assistant"
                                    else u["content"])
    q = make_questions(scene, np.random.default_rng(1), ["color"])[0]
    assert shape_first(answer_text(scene, q, "described")).endswith(f"so {q['answer']}")


def test_captions_are_scored_in_the_usual_order():
    scenes = [sample_scene(np.random.default_rng(s)) for s in range(5)]
    captions = [make_caption(s, style="positions") for s in scenes]
    score = scored_in_usual_order(caption_accuracy)
    assert score(scenes, [shape_first(c) for c in captions]) == caption_accuracy(scenes, captions)
    assert caption_accuracy(scenes, [shape_first(c) for c in captions])["accuracy"] == 0.0
