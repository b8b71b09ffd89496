"""Every (colour, shape) pair in words: does the assistant name an unseen pair in an image when
it has written that pair in text?

`scripts/compositional_probe.py` found that the shipped assistant's image tokens carry the shape
of an object whose pair it never saw (teacher-forced after a colour the shape is seen with, it
ranks the true shape first 0.80-0.82 of the time), but after the true colour word it rarely does
(0.135-0.170): in every reply it was trained on, "red" is never followed by "triangle".

A real LLM has read every colour-shape phrase; only the *images* of the held-out pairs are new
to it. `AllPairsTextBatches` gives the assistant the same: its "text" task (the scene's caption
in the user's words, then a question) draws fresh scenes in which every pair may occur, and with
"described" answers the reply restates that caption before the answer, as the image tasks do, so
the assistant itself writes "a small red triangle". Images keep the held-out pairs out, so
test_compositional still measures pairs never *seen*.
"""
import numpy as np

from minimllm.assistant import TEXT_QTYPES, InstructionBatches, answer_text, text_turn
from minimllm.data import make_questions, reasoned_answer, sample_scene


def text_messages(rng: np.random.Generator, format_prompt: str, answer_style: str,
                  scene: dict | None = None, restate: bool = True) -> list[dict]:
    """A "text" conversation: the caption of `scene` (None: a fresh scene whose objects may have
    any (colour, shape) pair) and a question. With `restate` the reply is written in
    `answer_style` ("described": the caption restated, then the answer); without it, as chapter
    07's text task writes it (the answer, a relation's reasoned out)."""
    scene = sample_scene(rng, min_objects=1, max_objects=4) if scene is None else scene
    q = make_questions(scene, rng, [str(rng.choice(TEXT_QTYPES))])[0]
    answer = (answer_text(scene, q, answer_style) if restate
              else reasoned_answer(q, reasoned=answer_style == "described"))
    return [text_turn(scene, q["question"], format_prompt),
            {"role": "assistant", "content": answer}]


class AllPairsTextBatches(InstructionBatches):
    """InstructionBatches whose "text" task names every pair and restates its caption
    (`text_messages`); the image tasks are unchanged. `text_batches` turns either change off,
    for the ablation."""

    all_pairs, restate = True, True

    def messages(self, task: str, scene: dict, rng: np.random.Generator) -> list[dict]:
        if task == "text":
            return text_messages(rng, self.format_prompt, self.answer_style,
                                 None if self.all_pairs else scene, self.restate)
        return super().messages(task, scene, rng)


def text_batches(all_pairs: bool, restate: bool) -> type[InstructionBatches]:
    """The batches with one or both of the text task's changes: fresh scenes with every pair
    (`all_pairs`, else the image's own scene, held-out pairs excluded) and a reply that restates
    the caption (`restate`)."""
    return type("TextBatches", (AllPairsTextBatches,), {"all_pairs": all_pairs,
                                                        "restate": restate})
