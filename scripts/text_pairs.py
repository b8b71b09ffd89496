"""The text task's two changes, one at a time: what did each buy the assistant?

`scripts/compositional_probe.py` found that an assistant whose text task used the training
images' scenes (held-out colour-shape pairs never written anywhere) carries the shape of an
unseen pair in its image tokens (teacher-forced after a colour the shape is seen with, it ranks
the true shape first 0.80-0.82 of the time), but after the true colour word it rarely does
(0.135-0.170): in every reply it was trained on, "red" is never followed by "triangle".

Chapter 07's text task (`minimllm.assistant.task_messages`) now makes two changes at once:
- **all pairs**: its scene is a fresh one in which every pair may occur (a real LLM has read
  every colour-shape phrase; only the *images* of the held-out pairs are new to it);
- **restates**: its reply is written as the vqa task's, so with "described" answers the
  assistant restates the caption and writes "a small red triangle" itself.
`text_batches(all_pairs, restate)` gives the batches with either change turned off (both off:
the text task as it was, the image's own scene and the bare answer); images keep the held-out
pairs out throughout, so test_compositional still measures pairs never *seen*.
"""
import numpy as np

from minimllm.assistant import TEXT_QTYPES, InstructionBatches, text_messages, text_turn
from minimllm.data import make_questions, reasoned_answer, sample_scene


def bare_text_messages(scene: dict, rng: np.random.Generator, format_prompt: str,
                       answer_style: str) -> list[dict]:
    """The text task's conversation as it was: the reply is the answer alone (a relation's
    reasoned out when the answers are "described"), never the caption restated."""
    q = make_questions(scene, rng, [str(rng.choice(TEXT_QTYPES))])[0]
    return [text_turn(scene, q["question"], format_prompt),
            {"role": "assistant",
             "content": reasoned_answer(q, reasoned=answer_style == "described")}]


class TextAblationBatches(InstructionBatches):
    """InstructionBatches whose "text" task has the changes switched on in `all_pairs` and
    `restate`; the image tasks are unchanged."""

    all_pairs, restate = True, True

    def messages(self, task: str, scene: dict, rng: np.random.Generator) -> list[dict]:
        if task != "text":
            return super().messages(task, scene, rng)
        if self.all_pairs:
            scene = sample_scene(rng, min_objects=1, max_objects=4)  # as task_messages draws it
        write = text_messages if self.restate else bare_text_messages
        return write(scene, rng, self.format_prompt, self.answer_style)


def text_batches(all_pairs: bool, restate: bool) -> type[InstructionBatches]:
    """The batches with one, both or neither of the text task's changes."""
    return type("TextBatches", (TextAblationBatches,), {"all_pairs": all_pairs,
                                                        "restate": restate})
