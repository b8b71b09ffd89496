"""Noise on the wording of stage 2's visual questions: is a question's type then read from the
words that name what is asked?

Chapter 07 counts the held-out phrasings one wording at a time: most score 0.75-1.00, and the few
that fail are read as a training question of another type whose opening words they share ("how
large is the cross?" restated as "how many large objects ...", "can you see the A left of the
B?" as an existence question). `scripts/wordings.py` showed the other side: with half the
training wordings, held-out phrasings fall. This asks whether noise on the frame of a question,
the words around what it names, teaches the LM to read the type from what is named. In each "vqa"
conversation of stage 2, every frame word of the question (not a `CONTENT_WORDS` word: colours,
shapes, sizes, positions, relations, nouns, and the words that name what is asked) is dropped
with probability `p`, and a frame word drawn from every training wording (`frame_words`) is put
in at a random place with probability `p` per word. The reply is unchanged, so it restates the
question in its training form: the LM learns to write the clean question from a noisy one (a
denoising task; random deletion and insertion are two of EDA's four operations, Wei & Zou 2019).
The test questions and the held-out wordings are built without noise.

    python scripts/assistant_sweep.py --name question-noise --question-noise 0.15 \
        --cache data/checkpoints/assistant_sweeps/wordings.json --seeds 0 1
"""

import numpy as np

from minimllm.assistant import InstructionBatches
from minimllm.data import COLORS, COLS, NOUNS, RELATIONS, ROWS, SHAPES, SIZES, TEMPLATES
from minimllm.tokenizer import IMAGE_TOKEN

ASKED = ("color", "colour", "shape", "form", "kind", "type", "size", "big", "large", "small",
         "position", "location", "where", "how", "many", "number", "count", "there", "contain",
         "show", "shown", "visible", "appear", "any", "anywhere", "a", "an", "or", "and", "not")
CONTENT_WORDS = frozenset(
    ASKED + COLORS + SHAPES + SIZES + ROWS + COLS + NOUNS + tuple(NOUNS[i] + "s" for i in
                                                                 range(len(NOUNS)))
    + tuple(w for r in RELATIONS for w in r.split()))


def frame_words() -> list[str]:
    """The words of every training wording of the scene questions (not the defect questions of
    chapter 09) outside its slots and `CONTENT_WORDS`, sorted."""
    words = {w.strip("?.,") for kind, ts in TEMPLATES.items() if not kind.startswith("defect")
             for t in ts for w in t.split() if "{" not in w}
    return sorted(w for w in words if w and w not in CONTENT_WORDS)


def noisy_question(question: str, p: float, rng: np.random.Generator,
                   pool: list[str]) -> str:
    """`question` with each frame word dropped with probability `p` and, after each word, a word
    of `pool` put in with probability `p`; content words and the final '?' or '.' stay."""
    end = question[-1] if question[-1] in "?." else ""
    words = (question[:-1] if end else question).split()
    out = []
    for w in words:
        if w in CONTENT_WORDS or rng.random() >= p:
            out.append(w)
        if rng.random() < p:
            out.append(pool[int(rng.integers(len(pool)))])
    return " ".join(out or words) + end


def noisy_batches(p: float):
    """An `InstructionBatches` whose "vqa" questions carry frame noise of probability `p`, drawn
    from a generator of their own, seeded by (seed, step) as the batch is: the scenes, tasks and
    questions are the recipe's, and a resumed run sees the same noise."""
    if not 0 < p < 1:
        raise ValueError(f"question noise p={p!r}: give a probability in (0, 1)")
    pool = frame_words()

    class QuestionNoiseBatches(InstructionBatches):
        def __call__(self, step: int) -> dict:
            self.noise = np.random.default_rng([self.seed, step, 1])
            return super().__call__(step)

        def messages(self, task, scene, rng):
            messages = super().messages(task, scene, rng)
            if task != "vqa":
                return messages
            head, content = f"{IMAGE_TOKEN} ", messages[0]["content"]
            if not (content.startswith(head) and content.endswith(self.format_prompt)):
                raise ValueError(f"a vqa turn not written as image, question, format prompt: "
                                 f"{content!r}")
            question = content[len(head):len(content) - len(self.format_prompt)]
            messages[0] = {**messages[0], "content": head + noisy_question(
                question, p, self.noise, pool) + self.format_prompt}
            return messages

    return QuestionNoiseBatches
