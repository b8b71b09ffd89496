"""Shape before colour: does the assistant name an unseen (colour, shape) pair when it writes the
shape word before the colour word?

`scripts/compositional_probe.py` found the pull toward seen pairs in the words: after "a small
yellow" the assistant ranks "star" first for a yellow star 0.12-0.17 of the time, after a colour
the star is seen with 0.70-0.72 (the reference assistant, seeds 0 and 1 of the probe). In every
image-grounded reply of stage 2, "yellow" is never followed by "star", and the model learns that
as well as it learns the images. Written shape first ("a small star in yellow in the top left"),
the shape word comes before any colour word of its object: it is read from the image tokens with
no colour word next to it, and the colour word after it has the image's colour (a linear probe
reads the colour of a held-out pair at 0.99-1.00) to outweigh the pair's prior.

`ShapeFirstBatches` rewrites every description the assistant writes in stage 2 (the describe
replies, the description that starts a "described" answer, a conversation's replies) shape
first; user turns are unchanged (users write "yellow star"). The evaluation turns the generated
descriptions back to the usual order before scoring them, so the caption scores compare alike.
The recipe is otherwise chapter 07's (`AssistantConfig()`), its run cached in the sweep cache as
`assistant_sweep.py` caches its own:

    python scripts/word_order.py --seeds 0 1        # then: assistant_sweep.py --table
"""
import argparse
import re
from pathlib import Path

import numpy as np
from assistant_sweep import CACHE, example_answer, run_seeds

import minimllm.assistant
from minimllm.assistant import AssistantConfig, InstructionBatches
from minimllm.data import COLORS, SHAPES, SIZES

_USUAL = re.compile(rf"\b({'|'.join(SIZES)}) ({'|'.join(COLORS)}) ({'|'.join(SHAPES)})\b")
_SHAPE_FIRST = re.compile(rf"\b({'|'.join(SIZES)}) ({'|'.join(SHAPES)}) in ({'|'.join(COLORS)})\b")


def shape_first(text: str) -> str:
    """'a large red circle in the top left' -> 'a large circle in red in the top left'; a
    described answer keeps its restated question and answer (after the first ';') as they are."""
    description, sep, rest = text.partition(";")
    return _USUAL.sub(r"\1 \3 in \2", description) + sep + rest


def usual_order(text: str) -> str:
    """The inverse of `shape_first`: 'a large circle in red' -> 'a large red circle'."""
    return _SHAPE_FIRST.sub(r"\1 \3 \2", text)


class ShapeFirstBatches(InstructionBatches):
    """Chapter 07's batches with every assistant reply's description written shape first."""

    def messages(self, task: str, scene: dict, rng: np.random.Generator) -> list[dict]:
        return [{**m, "content": shape_first(m["content"])}
                if m["role"] == "assistant" and isinstance(m["content"], str) else m
                for m in super().messages(task, scene, rng)]


def scored_in_usual_order(score):
    """A caption scorer that first turns shape-first descriptions back to the usual order."""
    def wrapped(scenes, captions, *args, **kwargs):
        return score(scenes, [usual_order(c) for c in captions], *args, **kwargs)
    return wrapped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", default="shape-first")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--out-root", type=Path, default=Path("runs") / "assistant_sweeps")
    args = parser.parse_args()
    minimllm.assistant.InstructionBatches = ShapeFirstBatches  # main_job's batches
    for name in ("caption_accuracy", "position_precision"):
        setattr(minimllm.assistant, name,
                scored_in_usual_order(getattr(minimllm.assistant, name)))
    config = AssistantConfig()
    run_seeds(args, {"word_order": "shape first"}, config, shape_first(example_answer(config)))


if __name__ == "__main__":
    main()
