"""A vision tower that sees shape apart from colour: chapter 03's SigLIP pretraining with a share of
its images painted off the palette and captioned without colour words, then chapter 07's stage 2
from it.

`scripts/off_palette.py` taught shapes in off-palette colours in stage 2 and moved nothing on
unseen (colour, shape) pairs; the model it trained named the shape of one off-palette object at
about a third, and of one palette object asked "what shapes do you see?" at about a fifth
(scripts/shape_reading.py), against 0.94 when it describes the image in colour words. The
reference tower's zero-shot shape accuracy is 0.177 (chance 0.167, `data/checkpoints/vision`):
contrastive pretraining on Shapes World's captions taught it colour (0.997) and hardly shape,
so whatever reads shape downstream reads it through the colour. Here the tower's own pretraining
holds images whose colour says nothing: `--share` of the pairs are scenes painted off the palette
(`off_palette.render_off_palette`) with captions that name sizes, shapes and positions only.
Held-out pairs stay out of every image, as in chapter 03.

    python scripts/colour_free_tower.py --share 0.3 --seeds 0 1

trains the tower once (runs/towers/colour-free-<share>/, with its zero-shot colour and shape
accuracy on seen and on held-out pairs, beside the reference tower's), then runs chapter 07's
recipe from it, the reference LM unchanged, cached in the sweep cache as "colour-free-<share>".
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch
from assistant_sweep import CACHE, example_answer, run_seeds
from off_palette import off_palette_colour, render_off_palette, shapes_reply

import minimllm.assistant
from minimllm import contrastive
from minimllm.assistant import AssistantConfig
from minimllm.data import COLORS, HELDOUT_PAIRS, SHAPES, SIZES, render_scene, sample_scene
from minimllm.mllm import load_towers
from minimllm.tokenizer import train_tokenizer
from minimllm.train import TrainConfig, train
from minimllm.utils import checkpoints_dir, seed_everything
from minimllm.vision import ViTConfig, to_pixel_values


def off_palette_pairs(n: int, seed: int, captions_per_scene: int) -> dict:
    """`make_pairs`' format: n scenes painted off the palette, each caption colour-free."""
    rng = np.random.default_rng([seed, 77])
    scenes = [sample_scene(rng, min_objects=1, max_objects=3, exclude_pairs=HELDOUT_PAIRS)
              for _ in range(n)]
    images = [render_off_palette(s, [off_palette_colour(rng) for _ in s["objects"]])
              for s in scenes]
    captions = [[shapes_reply(s)] * captions_per_scene for s in scenes]
    return {"pixel_values": to_pixel_values(images), "captions": captions, "scenes": scenes}


def zero_shot(model, tokenizer, heldout: bool, n: int = 600) -> dict[str, float]:
    """Zero-shot colour and shape accuracy on n one-object images of seen or held-out pairs,
    with chapter 03's templates (shape also with colour-free ones: 'a large {}.')."""
    rng = np.random.default_rng(123)
    kw = {"require_pairs": HELDOUT_PAIRS} if heldout else {"exclude_pairs": HELDOUT_PAIRS}
    objs = [sample_scene(rng, n_objects=1, **kw) for _ in range(n)]
    img = contrastive.embed_images(model, to_pixel_values([render_scene(s) for s in objs]))
    colour = torch.tensor([COLORS.index(s["objects"][0]["color"]) for s in objs])
    shape = torch.tensor([SHAPES.index(s["objects"][0]["shape"]) for s in objs])
    colour_t = [f"a {s} {{}} {sh}." for s in SIZES for sh in SHAPES]
    shape_t = [f"a {s} {c} {{}}." for s in SIZES for c in COLORS]
    free_t = [f"a {s} {{}}." for s in SIZES]
    def accuracy(labels, classes, templates):
        return contrastive.zero_shot_accuracy(
            img, labels, contrastive.class_embeddings(model, tokenizer, classes, templates))

    return {"colour": accuracy(colour, COLORS, colour_t), "shape": accuracy(shape, SHAPES, shape_t),
            "shape, colour-free prompts": accuracy(shape, SHAPES, free_t)}


def train_tower(share: float, out_dir: Path):
    """Chapter 03's reference recipe (`contrastive.REFERENCE`) with `share` of the pairs off the
    palette; saves the vision tower and its zero-shot scores. Returns (model, tokenizer, scores)."""
    r = contrastive.REFERENCE
    seed_everything(r["seed"])
    from minimllm.data import text_corpus

    tokenizer = train_tokenizer(text_corpus(n_scenes=2000, seed=0), vocab_size=512)
    n_off = int(round(share * r["n_scenes"]))
    usual = contrastive.make_pairs(r["n_scenes"] - n_off, seed=r["seed"],
                       captions_per_scene=r["captions_per_scene"])
    pairs = usual
    if n_off:
        off = off_palette_pairs(n_off, r["seed"], r["captions_per_scene"])
        pairs = {"pixel_values": torch.cat([usual["pixel_values"], off["pixel_values"]]),
                 "captions": usual["captions"] + off["captions"],
                 "scenes": usual["scenes"] + off["scenes"]}
    model = contrastive.ContrastiveModel(
        ViTConfig(), contrastive.TextConfig(vocab_size=len(tokenizer)), loss="siglip")
    history = train(model, contrastive.contrastive_loss,
                    contrastive.PairSampler(pairs, tokenizer, r["batch_size"], seed=r["seed"]),
                    TrainConfig(steps=r["steps"], lr=r["lr"], weight_decay=0.1, seed=r["seed"],
                                log_every=50))
    model = model.cpu().eval()
    scores = {kind: zero_shot(model, tokenizer, kind == "held-out")
              for kind in ("seen", "held-out")}
    model.vision.save_pretrained(out_dir, metrics={
        "trained_by": "scripts/colour_free_tower.py", "share": share, "settings": r,
        "zero_shot": scores, "train_seconds": round(history.seconds, 1)})
    return model, tokenizer, scores


def use_tower(tower_dir: Path) -> None:
    """From now on, `assistant.main_job` starts from the vision tower in `tower_dir` and the
    reference LM."""
    def towers(allow_random=False, device=None, reference=False):
        _, lm, tokenizer = load_towers(allow_random, device, reference=True)
        return contrastive.load_vision_encoder(tower_dir, device), lm, tokenizer

    minimllm.assistant.load_towers = towers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--share", type=float, default=0.3)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--out-root", type=Path, default=Path("runs") / "assistant_sweeps")
    args = parser.parse_args()
    args.name = f"colour-free-{args.share}"
    tower_dir = Path("runs") / "towers" / args.name
    if not (tower_dir / "model.safetensors").exists():
        train_tower(args.share, tower_dir)
    print("zero-shot, this tower:", json.dumps(json.loads(
        (tower_dir / "metrics.json").read_text())["zero_shot"]))
    reference = json.loads((checkpoints_dir() / "vision" / "metrics.json").read_text())
    print(f"reference tower (its metrics.json, seen pairs): colour "
          f"{reference['zero_shot_color']:.3f}, shape {reference['zero_shot_shape']:.3f}")
    if not args.seeds:
        return

    use_tower(tower_dir)
    config = AssistantConfig()
    run_seeds(args, {"vision tower": f"colour-free pretraining, share {args.share}"}, config,
              example_answer(config))


if __name__ == "__main__":
    main()
