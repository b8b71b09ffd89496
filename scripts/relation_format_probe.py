"""Which written form of a relation answer can the foundation LM learn to conclude from?

    python scripts/relation_format_probe.py --seeds 0 1

The end of phase 1 (an LM that reads positions but answers relation questions by the order of
mention) is fine-tuned on relation questions alone, each followed by a scratchpad that already
holds both positions, and scored on the one token that concludes: P(yes) against P(no) after
"..., so" on 600 questions about fresh scenes, teacher-forced. What is measured is the
comparison alone, the last step of `data.reasoned_answer`, in three forms:

- positions: "is the red circle above the blue star? the red circle is in the top left and the
  blue star is in the center, so" (the answer needs the relation from the question, far back);
- restated: the same, then "; top left above center, so" (the package's `reasoned_answer`);
- bare: "top left, center, above?" (no question: the comparison table alone).

Results are cached by format and seed in data/checkpoints/lm_sweeps/relation_format.json (or
--cache), which chapter 01 reads.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from run_cache import checkpoint_at, load_runs, save_run

from minimllm.data import RELATIONS, make_questions, reasoned_answer, sample_scene
from minimllm.lm import LanguageModel, lm_loss, random_windows, tokenize_corpus
from minimllm.pretrained import load_tokenizer
from minimllm.train import TrainConfig, train
from minimllm.utils import checkpoints_dir

FORMATS = ("positions", "restated", "bare")


def prompt(question: dict, form: str) -> str:
    """The text before the concluding yes / no, in one of `FORMATS`."""
    reasoning = reasoned_answer(question).rsplit(", so ", 1)[0]
    stated, restated = reasoning.split("; ")
    if form == "positions":
        return f"{question['question']} {stated}, so"
    if form == "restated":
        return f"{question['question']} {reasoning}, so"
    rel = next(r for r in RELATIONS if f" {r} " in f" {restated} ")
    a, b = restated.split(f" {rel} ")
    return f"{a}, {b}, {rel}?"


def items(n_scenes: int, seed: int, form: str) -> list[tuple[str, str]]:
    """(prompt, answer) for the relation questions about `n_scenes` scenes of 2-4 objects."""
    out = []
    for k in range(n_scenes):
        rng = np.random.default_rng([seed, 31, k])
        scene = sample_scene(rng, n_objects=int(rng.integers(2, 5)))
        out += [(prompt(q, form), q["answer"]) for q in make_questions(scene, rng, ["relation"])]
    return out


def run(form: str, seed: int, init: str, steps: int, lr: float) -> dict:
    folder, _, commit = init.partition(" at commit ")
    folder = checkpoint_at(folder, commit) if commit else folder
    tokenizer = load_tokenizer(folder)
    model = LanguageModel.from_pretrained(folder, "cpu")
    tokens = tokenize_corpus(tokenizer, [f"{p} {a}." for p, a in items(20000, 1, form)])
    test = items(600, 2, form)
    yes, no = (tokenizer(f" {w}", add_special_tokens=False).input_ids[-1] for w in ("yes", "no"))

    @torch.no_grad()
    def accuracy(m) -> dict:
        m.eval()
        right = 0
        for p, answer in test:
            logits = m(torch.tensor([tokenizer(p).input_ids])).logits[0, -1]
            right += ("yes" if logits[yes] > logits[no] else "no") == answer
        m.train()
        return {"accuracy": right / len(test)}

    before = accuracy(model)["accuracy"]
    start = time.perf_counter()
    history = train(model, lm_loss, random_windows(tokens, 32, 128, seed=seed),
                    TrainConfig(steps=steps, lr=lr, warmup_steps=steps // 20, seed=seed,
                                eval_every=steps // 4, log_every=10**9, device="cpu"),
                    eval_fn=accuracy)
    curve = [{"step": s, "accuracy": round(m["accuracy"], 4)} for s, m in history.evals]
    return {"format": form, "seed": seed, "init": init, "steps": steps, "lr": lr,
            "example": f"{test[0][0]} {test[0][1]}", "n_test": len(test),
            "before": round(before, 4), "curve": curve,
            "seconds": round(time.perf_counter() - start)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--init", default="data/checkpoints/lm at commit 7a8be5c",
                        help="the LM to start from (default: phase 1, from git history)")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--cache", type=Path,
                        default=checkpoints_dir() / "lm_sweeps" / "relation_format.json")
    args = parser.parse_args()
    for seed in args.seeds:
        for form in args.formats:
            key = f"{form} seed={seed} steps={args.steps} lr={args.lr}"
            if key in load_runs(args.cache):
                print(f"cached: {key}")
                continue
            result = run(form, seed, args.init, args.steps, args.lr)
            print(key, result["before"], result["curve"], flush=True)
            save_run(args.cache, key, result)


if __name__ == "__main__":
    main()
