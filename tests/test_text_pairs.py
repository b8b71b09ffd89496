"""scripts/text_pairs.py: the text task names held-out pairs and restates its caption; the image
tasks are untouched."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from text_pairs import AllPairsTextBatches, text_batches, text_messages  # noqa: E402

from minimllm.assistant import LOOK_PROMPT, InstructionBatches  # noqa: E402
from minimllm.data import HELDOUT_PAIRS, make_caption, sample_scene  # noqa: E402


def test_text_conversations_name_held_out_pairs_and_restate_the_caption():
    held = [f"{c} {s}" for c, s in HELDOUT_PAIRS]
    chats = [text_messages(np.random.default_rng(k), LOOK_PROMPT, "described") for k in range(300)]
    assert sum(any(p in m[0]["content"] for p in held) for m in chats) > 30  # ~1 in 3 texts
    for user, reply in chats:
        caption = user["content"].split(". ")[0]
        assert reply["content"].startswith(caption + ";")  # the reply restates the caption
    short = text_messages(np.random.default_rng(0), "", "short")[1]["content"]
    assert ";" not in short and len(short.split()) <= 2


def test_image_tasks_are_those_of_instruction_batches():
    scene = sample_scene(np.random.default_rng(3), exclude_pairs=HELDOUT_PAIRS)
    ours = AllPairsTextBatches.__new__(AllPairsTextBatches)
    base = InstructionBatches.__new__(InstructionBatches)
    for b in (ours, base):
        b.format_prompt, b.answer_style = LOOK_PROMPT, "described"
    for task in ("describe", "vqa", "conversation"):
        assert (ours.messages(task, scene, np.random.default_rng(1))
                == base.messages(task, scene, np.random.default_rng(1)))
    text = ours.messages("text", scene, np.random.default_rng(1))[0]["content"]
    assert make_caption(scene, style="positions") not in text  # a fresh scene, not the image's


def test_the_ablation_turns_each_change_off_alone():
    scene = sample_scene(np.random.default_rng(3), exclude_pairs=HELDOUT_PAIRS)
    caption = make_caption(scene, style="positions")
    base = InstructionBatches.__new__(InstructionBatches)
    base.format_prompt, base.answer_style = LOOK_PROMPT, "described"
    shipped = base.messages("text", scene, np.random.default_rng(5))
    for all_pairs in (False, True):
        for restate in (False, True):
            b = text_batches(all_pairs, restate).__new__(text_batches(all_pairs, restate))
            b.format_prompt, b.answer_style = LOOK_PROMPT, "described"
            user, reply = b.messages("text", scene, np.random.default_rng(5))
            assert (caption in user["content"]) != all_pairs  # the image's scene, or a fresh one
            assert reply["content"].startswith(user["content"].split(". ")[0] + ";") == restate
            if not all_pairs and not restate:
                assert [user, reply] == shipped  # both off: chapter 07's text task
