"""scripts/text_pairs.py: the text task's two changes switch on and off one at a time; both on
is chapter 07's text task, and the image tasks are untouched."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from text_pairs import text_batches  # noqa: E402

from minimllm.assistant import LOOK_PROMPT, InstructionBatches  # noqa: E402
from minimllm.data import HELDOUT_PAIRS, make_caption, sample_scene  # noqa: E402


def batches(cls):
    b = cls.__new__(cls)
    b.format_prompt, b.answer_style = LOOK_PROMPT, "described"
    return b


def test_each_change_switches_alone_and_both_on_is_chapter_07():
    held = [f"{c} {s}" for c, s in HELDOUT_PAIRS]
    shipped = batches(InstructionBatches)
    for k in range(60):
        scene = sample_scene(np.random.default_rng(1000 + k), exclude_pairs=HELDOUT_PAIRS)
        caption = make_caption(scene, style="positions")
        for all_pairs in (False, True):
            for restate in (False, True):
                ours = batches(text_batches(all_pairs, restate))
                user, reply = ours.messages("text", scene, np.random.default_rng(k))
                assert (caption in user["content"]) != all_pairs  # the image's scene, or fresh
                said = user["content"].split(". ")[0]
                assert reply["content"].startswith(said + ";") == restate  # restated, or bare
                if all_pairs and restate:
                    assert [user, reply] == shipped.messages("text", scene,
                                                             np.random.default_rng(k))
    fresh = [batches(text_batches(True, True)).messages("text", None, np.random.default_rng(k))
             for k in range(300)]
    assert sum(any(p in m[1]["content"] for p in held) for m in fresh) > 30  # the reply writes them
    bare = batches(text_batches(False, False)).messages(
        "text", sample_scene(np.random.default_rng(0)), np.random.default_rng(0))[1]["content"]
    assert ";" not in bare


def test_image_tasks_are_those_of_instruction_batches():
    scene = sample_scene(np.random.default_rng(3), exclude_pairs=HELDOUT_PAIRS)
    ours, base = batches(text_batches(True, False)), batches(InstructionBatches)
    for task in ("describe", "vqa", "conversation"):
        assert (ours.messages(task, scene, np.random.default_rng(1))
                == base.messages(task, scene, np.random.default_rng(1)))
