"""Why does a trained assistant fall short? Over- or under-fitting, and answer priors.

    python scripts/assistant_diagnostics.py [MODEL_DIR] [--n 400]

Scores VQA on training scenes and on held-out test scenes (the same number of each): equal
accuracies mean the model underfits (more training would help), a gap means it memorises. Also
prints, per question type, the share of the most frequent answer the model gives (a model that
answers from priors gives one answer to every question of a type). Chapter 07 quotes its output.
"""

import argparse
import json
from collections import Counter

from minimllm.chat import load_mllm
from minimllm.data import load_dataset
from minimllm.evaluate import evaluate_vqa
from minimllm.pretrained import find_pretrained, load_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?",
                        help="a saved assistant (default: yours, else the reference)")
    parser.add_argument("--n", type=int, default=400, help="scenes per split")
    args = parser.parse_args()
    path = args.model or find_pretrained("assistant")
    model, processor = load_mllm(path, device="cpu")
    settings = load_metrics(path)["settings"]
    dataset = load_dataset(n_train=settings["n_train"], n_test=settings["n_eval"],
                           n_compositional=settings["n_eval"])
    report = {}
    for split in ("train", "test"):
        rows = dataset[split].select(range(min(args.n, len(dataset[split]))))
        scores, answers = evaluate_vqa(model, processor, rows, settings["format_prompt"])
        top = {}
        for qtype in sorted({r["qtype"] for r in rows}):
            given = [a for a, r in zip(answers, rows) if r["qtype"] == qtype]
            answer, count = Counter(given).most_common(1)[0]
            top[qtype] = {"answer": answer, "share": round(count / len(given), 3)}
        report[split] = {"vqa": {k: round(v, 3) for k, v in scores.items()}, "most_frequent": top}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
