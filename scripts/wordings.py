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
    python scripts/wordings.py runs/assistant_sweeps/half-wordings-s0 data/checkpoints/assistant
        # VQA on test split by wording: kept by --wordings half, or dropped
"""

import json
import re
from pathlib import Path

import minimllm.data


def use_fewer_wordings() -> dict:
    """Keep every other training wording of each question type, in place (make_questions reads
    `data.TEMPLATES` at each call); returns the change as the sweep's cache records it."""
    for kind, templates in minimllm.data.TEMPLATES.items():
        minimllm.data.TEMPLATES[kind] = templates[::2]
    return {"wordings": "every other training wording of each type"}


def written_by(template: str, question: str) -> bool:
    """Whether `template` ("how big is the {ref}?") writes `question`, its slots filled."""
    return re.fullmatch(re.sub(r"\\\{\w+\\\}", ".+", re.escape(template)), question) is not None


def wording_group(question: str, qtype: str) -> str:
    """"kept" or "dropped": whether `question` is in a wording `use_fewer_wordings` keeps for its
    type, or one it drops; "both" where a kept and a dropped wording write the same question."""
    templates = minimllm.data.TEMPLATES[qtype]
    match = lambda t: written_by(t, question)
    kept, dropped = any(map(match, templates[::2])), any(map(match, templates[1::2]))
    if not (kept or dropped):
        raise ValueError(f"no training wording of {qtype!r} writes {question!r}")
    return "both" if kept and dropped else "kept" if kept else "dropped"


def split_accuracy(model_dirs) -> None:
    """Print each saved assistant's VQA accuracy on chapter 07's 500 test questions, split by
    `wording_group` (run before any `use_fewer_wordings`, on the full list of wordings)."""
    from minimllm.chat import load_mllm
    from minimllm.data import load_dataset
    from minimllm.evaluate import evaluate_vqa, final_answer, normalize_answer

    rows = list(load_dataset(n_train=24000, n_test=500, n_compositional=500)["test"])
    groups = [wording_group(r["question"], r["qtype"]) for r in rows]
    for path in model_dirs:
        model, processor = load_mllm(path)
        prompt = json.loads((Path(path) / "metrics.json").read_text())[
            "settings"]["format_prompt"]
        _, answers = evaluate_vqa(model, processor, rows, prompt)
        right = [normalize_answer(final_answer(a)) == normalize_answer(r["answer"])
                 for a, r in zip(answers, rows)]
        scores = {g: (sum(ok for ok, x in zip(right, groups) if x == g), groups.count(g))
                  for g in ("kept", "dropped", "both")}
        print(f"{path}: " + ", ".join(f"{g} {k / max(n, 1):.3f} ({n})"
                                      for g, (k, n) in scores.items()), flush=True)


if __name__ == "__main__":
    import sys

    split_accuracy(sys.argv[1:])
