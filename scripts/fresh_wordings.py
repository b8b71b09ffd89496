"""VQA in wordings that no part of the course uses: neither training (`data.TEMPLATES`) nor the
held-out phrasings that chapter 07 and the sweeps measure (`data.HELDOUT_TEMPLATES`).

The held-out phrasings have been looked at while recipes were chosen; `FRESH_TEMPLATES`, two new
wordings per question type written before any model was scored on them, are a check that was not.
Each of chapter 07's 500 test scenes is asked its question's type in a fresh wording
(`assistant.heldout_phrasings` with these templates in place of the held-out ones); the score is
printed per type and per wording, beside the answer prior (the most frequent training answer of
the type).

    python scripts/fresh_wordings.py data/checkpoints/assistant runs/assistant_sweeps/X-s0 ... \
        [--cache data/checkpoints/assistant_sweeps/fresh_wordings.json]

With `--cache`, each model's scores are added to that JSON file (by folder) as it finishes.
"""

import json
import sys
from pathlib import Path

import minimllm.data

FRESH_TEMPLATES = {
    "color": ("what colour would you call the {ref}?", "the {ref} has what colour?"),
    "shape": ("what shape would you call the {ref}?", "the {ref} has what shape?"),
    "size": ("would you call the {ref} small or large?", "what size would you say the {ref} is?"),
    "position": ("in what spot is the {ref}?", "whereabouts is the {ref}?"),
    "count": ("how many {noun} can be seen?", "what number of {noun} is there?"),
    "relation": ("does the {a} sit {rel} the {b}?", "is the {a} positioned {rel} the {b}?"),
    "existence": ("can one see {desc}?", "would i find {desc} here?"),
}


def check_fresh() -> None:
    """Every fresh wording is new: in no training and no held-out template of its type."""
    for kind, templates in FRESH_TEMPLATES.items():
        used = set(minimllm.data.TEMPLATES[kind]) | set(minimllm.data.HELDOUT_TEMPLATES[kind])
        if used & set(templates):
            raise ValueError(f"{kind}: {sorted(used & set(templates))} is not a fresh wording")


def fresh_rows(test, seed: int = 0) -> list[dict]:
    """The test rows asked in `FRESH_TEMPLATES` (the held-out templates put back afterwards)."""
    from minimllm.assistant import heldout_phrasings

    check_fresh()
    saved = dict(minimllm.data.HELDOUT_TEMPLATES)
    try:
        minimllm.data.HELDOUT_TEMPLATES.update(FRESH_TEMPLATES)
        return heldout_phrasings(test, seed)
    finally:
        minimllm.data.HELDOUT_TEMPLATES.clear()
        minimllm.data.HELDOUT_TEMPLATES.update(saved)


def wording_of(question: str, qtype: str) -> int:
    """The index of the fresh wording of `qtype` that wrote `question`."""
    from wordings import written_by

    for i, t in enumerate(FRESH_TEMPLATES[qtype]):
        if written_by(t, question):
            return i
    raise ValueError(f"no fresh wording of {qtype!r} writes {question!r}")


def main(model_dirs, cache: Path | None = None) -> dict:
    from minimllm.chat import load_mllm
    from minimllm.data import load_dataset
    from minimllm.evaluate import (
        answer_prior,
        evaluate_vqa,
        final_answer,
        normalize_answer,
        prior_accuracy,
    )

    data = load_dataset(n_train=24000, n_test=500, n_compositional=500)
    rows = fresh_rows(data["test"])
    train = data["train"]
    prior = prior_accuracy(answer_prior(train["answer"], train["qtype"]),
                           [r["answer"] for r in rows], [r["qtype"] for r in rows])
    print(f"{len(rows)} questions in fresh wordings; answer prior {prior['overall']:.3f}")
    results = {}
    for path in model_dirs:
        model, processor = load_mllm(path)
        prompt = json.loads((Path(path) / "metrics.json").read_text())["settings"][
            "format_prompt"]
        scores, answers = evaluate_vqa(model, processor, rows, prompt)
        right = [normalize_answer(final_answer(a)) == normalize_answer(r["answer"])
                 for a, r in zip(answers, rows)]
        per_wording = {}
        for ok, r in zip(right, rows):
            key = f"{r['qtype']} {wording_of(r['question'], r['qtype'])}"
            per_wording.setdefault(key, []).append(ok)
        results[str(path)] = {"scores": scores, "per_wording": {
            k: (sum(v) / len(v), len(v)) for k, v in sorted(per_wording.items())}}
        print(f"{path}: {scores['overall']:.3f} (" + ", ".join(
            f"{k} {v:.3f}" for k, v in scores.items() if k != "overall") + ")")
        print("    per wording: " + ", ".join(
            f"{k} {a:.2f} ({n})" for k, (a, n) in results[str(path)]["per_wording"].items()),
            flush=True)
        if cache is not None:
            saved = json.loads(cache.read_text()) if cache.exists() else {}
            saved[str(path)] = {"answer_prior": prior, **results[str(path)]}
            cache.write_text(json.dumps(saved, indent=1))
    return results


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", help="saved assistant folders")
    parser.add_argument("--cache", type=Path, help="a JSON file to add the scores to")
    args = parser.parse_args(sys.argv[1:])
    main(args.models, args.cache)
