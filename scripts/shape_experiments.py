"""Can chapter 03's contrastive encoder be pushed to learn shape? Zero-shot shape and colour after
SigLIP training with ordinary batches, with counterfactual pairs, and with same-colour batches.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/shape_experiments.py \
        --rows ordinary counterfactual --steps 500 --seeds 0 1

(the table of chapter 03, section 4; a run takes about 7-8 minutes on one CPU core).

Every run is chapter 03's setup (`minimllm/contrastive.py`): the same ViT and text encoder, the
SigLIP loss, 6,000 training scenes with 4 captions each, batch 64, lr 2e-3, and the chapter's
zero-shot evaluation (prompts ensembled over sizes and shapes / colours, 600 single-object images,
seed 123). Only the batches change:
- `ordinary`: random batches (`PairSampler`), as in the chapter;
- `counterfactual`: half the batches are 32 scenes next to a copy of each with one object's shape
  changed, image and caption (synthetic hard negatives, as in TripletCLIP, Patel et al. 2024): the
  only thing that tells a scene from its twin is one shape; the other batches are the ordinary ones;
- `hard_negatives`: `PairSampler(hard_negatives=0.5)`, half the batches drawn among scenes that
  share a colour (NegCLIP-style hard-negative batches).

Finished runs are cached in data/artifacts/shape_experiments.json (an interrupted sweep resumes
where it stopped). The script prints a markdown table: mean and per-seed values.
"""

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch
from run_cache import load_runs, save_run

from minimllm.contrastive import (
    ContrastiveModel,
    PairSampler,
    TextConfig,
    class_embeddings,
    contrastive_loss,
    embed_images,
    make_pairs,
    single_object_eval_set,
    tokenize,
    zero_shot_accuracy,
)
from minimllm.data import (
    COLORS,
    HELDOUT_PAIRS,
    SHAPES,
    SIZES,
    make_caption,
    render_scene,
    text_corpus,
)
from minimllm.tokenizer import train_tokenizer
from minimllm.train import TrainConfig, train
from minimllm.utils import artifacts_dir, seed_everything
from minimllm.vision import ViTConfig, to_pixel_values

ROWS = ("ordinary", "counterfactual", "hard_negatives")
LABELS = {"ordinary": "ordinary random batches",
          "counterfactual": "half the batches counterfactual pairs (one shape changed)",
          "hard_negatives": "half the batches same-colour (`hard_negatives=0.5`)"}


def shape_counterfactual(scene: dict, rng: np.random.Generator) -> dict:
    """A copy of `scene` with one object's shape changed to another (never to a held-out
    (colour, shape) pair, nor to a pair already in the scene)."""
    twin = copy.deepcopy(scene)
    used = {(o["color"], o["shape"]) for o in scene["objects"]}
    obj = twin["objects"][int(rng.integers(len(twin["objects"])))]
    options = [s for s in SHAPES
               if (obj["color"], s) not in used and (obj["color"], s) not in HELDOUT_PAIRS]
    obj["shape"] = str(rng.choice(options))
    obj.pop("bbox")  # the old shape's box; rendering and captions do not use it
    return twin


def counterfactual_pairs(pairs: dict, seed: int = 0) -> dict:
    """For every scene of `pairs`, its shape counterfactual: rendered image and fresh captions
    (as many per scene as `pairs` has)."""
    rng = np.random.default_rng(seed)
    twins = [shape_counterfactual(s, rng) for s in pairs["scenes"]]
    per_scene = len(pairs["captions"][0])
    return {"pixel_values": to_pixel_values([render_scene(t) for t in twins]),
            "captions": [[make_caption(t, rng) for _ in range(per_scene)] for t in twins],
            "scenes": twins}


class CounterfactualSampler:
    """step -> batch. A `share` of the steps: `batch_size // 2` random scenes, then their
    counterfactual twins in the same order (pair i and pair i + B/2 differ in one shape).
    The other steps: the ordinary `PairSampler` batch of that step."""

    def __init__(self, pairs: dict, twins: dict, tokenizer, batch_size: int, seed: int = 0,
                 share: float = 0.5):
        self.ordinary = PairSampler(pairs, tokenizer, batch_size, seed=seed)
        self.n, self.half = len(pairs["captions"]), batch_size // 2
        self.seed, self.share = seed, share
        self.per_scene = len(pairs["captions"][0])
        # (2n, 3, S, S): the scenes, then their twins
        self.pixel_values = torch.cat([pairs["pixel_values"], twins["pixel_values"]])
        flat = [c for caps in pairs["captions"] + twins["captions"] for c in caps]
        self.tokens = tokenize(tokenizer, flat)  # one padding length for scenes and twins

    def __call__(self, step: int) -> dict:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step + 7)
        if torch.rand(1, generator=g).item() >= self.share:
            return self.ordinary(step)
        idx = torch.randperm(self.n, generator=g)[:self.half]
        idx = torch.cat([idx, idx + self.n])                                # scenes, then twins
        cap = idx * self.per_scene + torch.randint(self.per_scene, (len(idx),), generator=g)
        ids, mask = self.tokens["input_ids"][cap], self.tokens["attention_mask"][cap]
        T = int(mask.sum(1).max())
        return {"pixel_values": self.pixel_values[idx], "input_ids": ids[:, :T],
                "attention_mask": mask[:, :T]}


@torch.no_grad()
def zero_shot(model: ContrastiveModel, tokenizer, zs: dict) -> dict:
    """Chapter 03's zero-shot evaluation with ensembled prompts (section 5)."""
    color_templates = [f"a {size} {{}} {shape}." for size in SIZES for shape in SHAPES]
    shape_templates = [f"a {size} {color} {{}}." for size in SIZES for color in COLORS]
    img = embed_images(model, zs["pixel_values"])                           # (N, E)
    return {"shape": zero_shot_accuracy(
                img, zs["shape"], class_embeddings(model, tokenizer, SHAPES, shape_templates)),
            "colour": zero_shot_accuracy(
                img, zs["color"], class_embeddings(model, tokenizer, COLORS, color_templates))}


def run(row: str, seed: int, steps: int, data: dict) -> dict:
    """Train chapter 03's SigLIP model with the batches of `row`; return its zero-shot scores."""
    tokenizer, pairs = data["tokenizer"], data["pairs"]
    seed_everything(seed)
    model = ContrastiveModel(ViTConfig(), TextConfig(vocab_size=len(tokenizer)), loss="siglip")
    if row == "counterfactual":
        batches = CounterfactualSampler(pairs, data["twins"], tokenizer, 64, seed=seed)
    else:
        batches = PairSampler(pairs, tokenizer, 64, seed=seed,
                              hard_negatives=0.5 if row == "hard_negatives" else 0.0)
    history = train(model, contrastive_loss, batches,
                    TrainConfig(steps=steps, lr=2e-3, weight_decay=0.1, seed=seed, log_every=50))
    scores = zero_shot(model.cpu().eval(), tokenizer, data["zs"])
    return {**scores, "final_loss": float(np.mean(history.losses[-20:])),
            "seconds": round(history.seconds, 1)}


def markdown_table(results: dict, rows, seeds, steps: int) -> str:
    """One line per row: mean and the per-seed values of zero-shot shape and colour."""
    def cell(runs, key):
        values = [r[key] for r in runs]
        return f"{np.mean(values):.3f} ({', '.join(f'{v:.3f}' for v in values)})"

    lines = [f"| run ({steps} steps, seeds {', '.join(map(str, seeds))}) "
             "| zero-shot shape, mean (per seed) | zero-shot colour, mean (per seed) |",
             "|---|---|---|"]
    for row in rows:
        runs = [results[key(row, s, steps)] for s in seeds if key(row, s, steps) in results]
        if runs:
            lines.append(f"| {LABELS[row]} | {cell(runs, 'shape')} | {cell(runs, 'colour')} |")
    lines.append(f"| chance | {1 / len(SHAPES):.3f} | {1 / len(COLORS):.3f} |")
    return "\n".join(lines)


def key(row: str, seed: int, steps: int) -> str:
    return f"{row} seed={seed} steps={steps}"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS),
                   help="which runs, in this order")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--cache", default=str(artifacts_dir() / "shape_experiments.json"))
    p.add_argument("--table-only", action="store_true",
                   help="print the table of cached runs, train nothing")
    args = p.parse_args()
    if args.steps < 1:
        p.error(f"--steps must be >= 1, got {args.steps}")
    cache = Path(args.cache)
    results = load_runs(cache)
    todo = [(r, s) for r in args.rows for s in args.seeds if key(r, s, args.steps) not in results]
    if todo and not args.table_only:
        t0 = time.time()
        data = {"tokenizer": train_tokenizer(text_corpus(n_scenes=2000, seed=0), vocab_size=512),
                "pairs": make_pairs(6000, seed=0, captions_per_scene=4),
                "zs": single_object_eval_set(600, seed=123)}
        if any(r == "counterfactual" for r, _ in todo):
            data["twins"] = counterfactual_pairs(data["pairs"], seed=0)
        print(f"data ready in {time.time() - t0:.0f} s; {len(todo)} run(s) to do, "
              f"{torch.get_num_threads()} thread(s)", flush=True)
        for i, (row, seed) in enumerate(todo, 1):
            print(f"[{i}/{len(todo)}] {row}, seed {seed}, {args.steps} steps", flush=True)
            out = run(row, seed, args.steps, data)
            results = save_run(cache, key(row, seed, args.steps), out)  # lose no finished run
            print(f"  zero-shot shape {out['shape']:.3f}, colour {out['colour']:.3f}, "
                  f"loss {out['final_loss']:.3f}, {out['seconds']:.0f} s", flush=True)
    print(markdown_table(results, args.rows, args.seeds, args.steps))


if __name__ == "__main__":
    main()
