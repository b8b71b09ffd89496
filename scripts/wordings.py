"""Fewer training wordings: does the variety of the questions' wording decide the held-out
phrasings?

Chapter 07 counts the held-out phrasings one wording at a time: most score 0.75-1.00, and the
few that fail are read as a training question of another type whose words they share ("how
large is the cross?" restated as "how many large objects ..."). If the variety of wordings in
training is what lets the LM read a question by the attribute it names, training with fewer of
them should lower the held-out phrasings, and leave VQA in the training wordings where it was.
`use_fewer_wordings` keeps every other training wording of each question type
(`data.TEMPLATES[kind][::2]`) for every question stage 2 writes; the test questions (built with
the dataset) and the held-out wordings (`data.HELDOUT_TEMPLATES`) are unchanged.

    python scripts/assistant_sweep.py --name half-wordings --wordings half \
        --cache data/checkpoints/assistant_sweeps/wordings.json --seeds 0 1
"""

import minimllm.data


def use_fewer_wordings() -> dict:
    """Keep every other training wording of each question type, in place (make_questions reads
    `data.TEMPLATES` at each call); returns the change as the sweep's cache records it."""
    for kind, templates in minimllm.data.TEMPLATES.items():
        minimllm.data.TEMPLATES[kind] = templates[::2]
    return {"wordings": "every other training wording of each type"}
