"""Does the projector keep the shape that the tower keeps? Stage 1 alone, probed.

`tower_probe.py` found that the colour-free tower's features read a held-out pair's shape almost
as well as a seen pair's (off-palette probes: 0.323 against 0.362), while the image tokens of the
assistants trained from it read it at 0.19-0.24 against 0.33-0.35: the projector loses it. Stage
1 trains the projector alone, on descriptions of palette-coloured scenes only. Here stage 1 runs
by itself (chapter 07's recipe: `AssistantConfig`'s projector, M and steps) from a tower, with or
without the off-palette shapes task of `off_palette.py` in its mixture, and the image tokens are
probed as `tower_probe.py` probes them (trained off the palette, tested on seen and held-out
pairs). Two towers, two mixtures, two seeds; a few minutes in all.

    python scripts/stage1_probe.py --towers data/checkpoints/vision runs/towers/colour-free-0.3

What it found (data/checkpoints/assistant_sweeps/stage1_probe.json; 100 steps, seeds 0 / 1):
after stage 1 the image tokens read shape worse than the tower under them, on seen pairs too,
and held-out pairs fall below chance (0.167): reference tower 0.323 / 0.147, its stage-1 tokens
seen 0.215 / 0.193, held-out 0.087 / 0.080; colour-free tower 0.362 / 0.323, its stage-1 tokens
seen 0.270 / 0.267, held-out 0.100 / 0.160. A 15% off-palette shapes task in stage 1 changes
nothing beyond the seed spread (held-out 0.082 / 0.102 and 0.102 / 0.105). The C-Abstractor's
first 100 steps on palette descriptions pool shape away; stage 2 brings some back (0.33-0.35 on
seen pairs, 0.19-0.24 held-out, from the colour-free tower with the shapes task).
With `--projectors` (stage1_probe_projectors.json, colour-free tower, describe only): the
C-Abstractor at M = 16 reads held-out shape at 0.090 / 0.207 (seen 0.315 / 0.278), the MLP
projector with one token per patch (M = 64, no pooling) at 0.260 / 0.197 (seen 0.312 / 0.318),
against 0.100 / 0.160 for chapter 07's C-Abstractor at M = 9: a lead (two seeds, spreads of
0.06-0.12) that pooling to few tokens is where held-out shape goes.
"""
import argparse
import json
from pathlib import Path

import torch
from off_palette import OffPaletteBatches
from tower_probe import one_object_images, probe, projector_features, tower_features

from minimllm.assistant import AssistantConfig, chat_loss
from minimllm.chat import ChatProcessor
from minimllm.contrastive import load_vision_encoder
from minimllm.data import load_dataset
from minimllm.mllm import MLLM, MLLMConfig, configure_stage, load_towers
from minimllm.train import TrainConfig, train
from minimllm.utils import checkpoints_dir, seed_everything
from minimllm.vision import to_pixel_values

MIXTURES = {"describe": {"describe": 1.0}, "describe + shapes": {"describe": 0.85, "shapes": 0.15}}


def stage1(tower: Path, mixture: dict, seed: int, steps: int, data: dict,
           projector: tuple[str, int] | None = None) -> MLLM:
    """Chapter 07's stage 1 from `tower` and the reference LM: only the projector trains.
    `projector`: (kind, M) instead of the recipe's."""
    c = AssistantConfig()
    kind, m = projector or (c.projector, c.num_image_tokens)
    seed_everything(seed)
    _, lm, tokenizer = load_towers(reference=True)
    model = MLLM(MLLMConfig(projector=kind, num_image_tokens=m,
                            vision_feature_layer=c.vision_feature_layer),
                 vision=load_vision_encoder(tower), lm=lm)
    configure_stage(model, 1)
    processor = ChatProcessor(tokenizer, model.num_image_tokens, model.vision.config.image_size)
    batches = OffPaletteBatches(processor, data["scenes"], data["pixel_values"], mixture,
                                c.batch_size, seed + 1, c.format_prompt, c.answer_style)
    train(model, chat_loss, batches, TrainConfig(steps=steps, lr=c.stage1_lr, seed=seed,
                                                  device="cpu", log_every=0))
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--towers", type=Path, nargs="+",
                        default=[checkpoints_dir() / "vision", Path("runs/towers/colour-free-0.3")])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=AssistantConfig().stage1_steps)
    parser.add_argument("--projectors", nargs="*", default=[],
                        help="KIND:M pairs (e.g. c_abstractor:16 mlp:64) to compare on the "
                             "describe mixture instead of the two mixtures")
    parser.add_argument("--out", type=Path,
                        default=checkpoints_dir() / "assistant_sweeps" / "stage1_probe.json")
    args = parser.parse_args()
    rows = load_dataset(n_train=4000, n_test=16, n_compositional=16)["train"]
    data = {"scenes": [{"objects": r["objects"], "defects": r["defects"]} for r in rows],
            "pixel_values": to_pixel_values([r["image"].convert("RGB") for r in rows])}
    train_px, train_y = one_object_images(1200, 0, heldout=False, off_palette=True)
    tests = {"seen": one_object_images(600, 1, heldout=False),
             "held-out": one_object_images(600, 2, heldout=True)}
    layer = AssistantConfig().vision_feature_layer
    results = {}
    for tower in args.towers:
        with torch.no_grad():
            results[f"{tower.name}: tower"] = probe(
                tower_features(load_vision_encoder(tower).eval(), layer), train_px, train_y,
                tests, "object")
        print(f"{tower.name:18s} tower                      {results[f'{tower.name}: tower']}",
              flush=True)
        if args.projectors:  # each projector on descriptions
            variants = [(f"{p} on describe", MIXTURES["describe"], (p.split(":")[0],
                                                                    int(p.split(":")[1])))
                        for p in args.projectors]
        else:  # the recipe's projector on each mixture
            variants = [(f"on {name}", mixture, None) for name, mixture in MIXTURES.items()]
        for name, mixture, projector in variants:
            for seed in args.seeds:
                model = stage1(tower, mixture, seed, args.steps, data, projector)
                with torch.no_grad():
                    r = probe(projector_features(model), train_px, train_y, tests, "object")
                results[f"{tower.name}: stage 1 {name}, seed {seed}"] = r
                print(f"{tower.name:18s} stage 1 {name:20s} seed {seed}: {r}", flush=True)
    args.out.write_text(json.dumps({"steps": args.steps, "probe": "off-palette, object tokens",
                                    "results": results}, indent=1))


if __name__ == "__main__":
    main()
