"""Where is shape bound to colour? Linear probes on frozen image features, trained on seen
(colour, shape) pairs and tested on held-out ones.

The assistant names the shape of a seen pair's object (VQA shape 0.82 and up) and misses it on
an unseen pair (compositional shape 0.11-0.14, answer prior 0.16). Either the image features
already carry shape only *with* its colour (a conjunction a readout learned on seen pairs cannot
apply to new ones), or they carry it apart and a later stage binds it. A linear probe answers
that per stage: logistic regression on one-object images of seen pairs, scored on fresh images
of seen pairs and on images of the held-out pairs (`data.HELDOUT_PAIRS`), for shape (chance
1/6) and colour (chance 1/8). A probe that reads shape at the same rate on both sets finds shape
apart from colour in those features; one that falls on held-out pairs finds a conjunction.

The features, each mean- and max-pooled over all the image's tokens, and over the object's own
tokens (those whose cell centre lies in its box):
- raw pixels, as 8 x 8 patches (a floor that no learning made);
- a vision tower with random weights (the architecture alone);
- the reference tower (`data/checkpoints/vision`), at the layer the MLLM reads;
- the assistant's own tower and its projector output, the image tokens the LM sees
  (`data/checkpoints/assistant`);
- any other tower folder given with `--towers` (e.g. runs/towers/colour-free-0.3).

    python scripts/tower_probe.py --train palette --towers runs/towers/colour-free-0.3 \
        runs/towers/colour-free-0.0            # and again with --train off-palette

What it found (data/checkpoints/assistant_sweeps/tower_probe_*.json; one probe per row, 600 test
images each, so about +-0.02; one tower seed each):
- Probes trained on palette colours read the held-out pairs' shape *below* chance from every
  trained tower's object tokens (reference 0.002, colour-free towers 0.035 / 0.053, the
  assistant's image tokens 0.018; seen pairs 0.43-0.50), near chance from pixels and from a
  random tower (0.187, 0.193): where shape is weak, the probe leans on colour, and in the seen
  pairs each colour lacks the shape it has in its held-out pair.
- Probes trained on objects painted off the palette, so that colour says nothing about shape,
  read shape from pixels (seen 0.372, held-out 0.375) and from a random tower (0.502, 0.457)
  equally on both sets, and from the colour-free tower (30% off-palette pairs) nearly so (0.362,
  0.323), but not from the reference tower (0.323, 0.147), its 0% control (0.347, 0.142) or the
  assistant's image tokens (0.288, 0.145); the assistant's own tower, one block fine-tuned in
  stage 2, is between (0.355, 0.265).
So contrastive pretraining on palette-coloured captions leaves the held-out pairs' shape
unreadable in the tower's features, colour-free pairs in pretraining restore it at the tower,
and the assistant's projector loses it again: its stage 1 and 2 see palette colours only.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from off_palette import off_palette_colour, render_off_palette
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from minimllm.chat import load_mllm
from minimllm.contrastive import load_vision_encoder
from minimllm.data import COLORS, HELDOUT_PAIRS, SHAPES, render_scene, sample_scene
from minimllm.mllm import MLLM
from minimllm.pretrained import find_pretrained
from minimllm.utils import checkpoints_dir, seed_everything
from minimllm.vision import VisionTransformer, ViTConfig, to_pixel_values


def one_object_images(n: int, seed: int, heldout: bool,
                      off_palette: bool = False) -> tuple[torch.Tensor, dict]:
    """n one-object scenes of seen (or held-out) pairs: pixel values and their labels;
    `off_palette`: each object painted in a random colour far from the palette's."""
    rng = np.random.default_rng(seed)
    kw = {"require_pairs": HELDOUT_PAIRS} if heldout else {"exclude_pairs": HELDOUT_PAIRS}
    scenes = [sample_scene(rng, n_objects=1, **kw) for _ in range(n)]
    labels = {"shape": np.array([SHAPES.index(s["objects"][0]["shape"]) for s in scenes]),
              "colour": np.array([COLORS.index(s["objects"][0]["color"]) for s in scenes]),
              "bbox": np.array([s["objects"][0]["bbox"] for s in scenes], dtype=float)}
    if not off_palette:
        return to_pixel_values([render_scene(s) for s in scenes]), labels
    del labels["colour"]  # painted off the palette: the scene's colour is not what it shows
    return to_pixel_values([render_off_palette(s, [off_palette_colour(rng)])
                            for s in scenes]), labels


def object_tokens(bbox: np.ndarray, side: int, image_size: int = 64) -> torch.Tensor:
    """(n, 4) boxes (x0, y0, x1, y1 in pixels) -> (n, side * side) bool: the tokens of a
    side x side grid whose cell centre lies in the box, or the cell of the box's centre."""
    centres = (np.arange(side) + 0.5) * image_size / side                     # (side,)
    inside_x = (centres[None] >= bbox[:, :1]) & (centres[None] <= bbox[:, 2:3])  # (n, side)
    inside_y = (centres[None] >= bbox[:, 1:2]) & (centres[None] <= bbox[:, 3:4])
    mask = inside_y[:, :, None] & inside_x[:, None, :]                        # (n, side, side)
    cx = ((bbox[:, 0] + bbox[:, 2]) / 2 * side / image_size).astype(int).clip(0, side - 1)
    cy = ((bbox[:, 1] + bbox[:, 3]) / 2 * side / image_size).astype(int).clip(0, side - 1)
    mask[np.arange(len(bbox)), cy, cx] = True
    return torch.from_numpy(mask.reshape(len(bbox), -1))


def pooled(tokens: torch.Tensor, bbox: np.ndarray, where: str) -> np.ndarray:
    """(n, N, D) tokens -> (n, 2D): mean and max over all tokens ("image") or over the object's
    tokens ("object")."""
    if where == "object":
        keep = object_tokens(bbox, int(round(tokens.shape[1] ** 0.5)))[..., None]  # (n, N, 1)
        mean = (tokens * keep).sum(1) / keep.sum(1)
        top = tokens.masked_fill(~keep, float("-inf")).amax(1)
    else:
        mean, top = tokens.mean(1), tokens.amax(1)
    return torch.cat([mean, top], dim=-1).numpy()


def tower_features(vision, layer: int):
    return lambda px: torch.cat([vision(chunk, feature_layer=layer).last_hidden_state
                                 for chunk in px.split(256)])


def projector_features(model: MLLM):
    return lambda px: torch.cat([model.image_features(chunk) for chunk in px.split(256)])


def pixel_features(px: torch.Tensor) -> torch.Tensor:
    """Pixels as tokens: (n, 64, 3 * 8 * 8), one per 8 x 8 patch, like the tower's input."""
    return F.unfold(px, 8, stride=8).transpose(1, 2)


def probe(features, train_px, train_y, tests, where: str) -> dict:
    """One logistic regression per attribute on the training features (pooled over the image or
    the object); accuracy per test set."""
    x = pooled(features(train_px), train_y["bbox"], where)
    scaler = StandardScaler().fit(x)
    out = {}
    for attribute in [a for a in ("shape", "colour") if a in train_y]:
        clf = LogisticRegression(max_iter=3000, C=0.1).fit(scaler.transform(x),
                                                         train_y[attribute])
        for name, (px, y) in tests.items():
            z = scaler.transform(pooled(features(px), y["bbox"], where))
            out[f"{attribute}, {name}"] = float((clf.predict(z) == y[attribute]).mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--towers", type=Path, nargs="*", default=[])
    parser.add_argument("--assistants", type=Path, nargs="*", default=[],
                        help="other saved assistants whose tower and image tokens to probe too")
    parser.add_argument("--n-train", type=int, default=1200)
    parser.add_argument("--n-test", type=int, default=600)
    parser.add_argument("--train", choices=("palette", "off-palette"), default="palette",
                        help="the probes' training images: seen pairs in the palette's colours, "
                             "or painted off the palette (colour then tells nothing of shape)")
    parser.add_argument("--out", type=Path, default=None,
                        help="default: data/checkpoints/assistant_sweeps/tower_probe_<train>.json")
    args = parser.parse_args()
    if args.out is None:
        args.out = checkpoints_dir() / "assistant_sweeps" / f"tower_probe_{args.train}.json"
    torch.set_grad_enabled(False)  # features only
    train_px, train_y = one_object_images(args.n_train, 0, heldout=False,
                                          off_palette=args.train == "off-palette")
    tests = {"seen": one_object_images(args.n_test, 1, heldout=False),
             "held-out": one_object_images(args.n_test, 2, heldout=True)}

    assistant = load_mllm(find_pretrained("assistant"))[0].eval()
    layer = assistant.config.vision_feature_layer
    seed_everything(0)
    features = {"pixels (8 x 8 patches)": pixel_features,
                "random tower": tower_features(VisionTransformer(ViTConfig()).eval(), layer),
                "reference tower": tower_features(
                    load_vision_encoder(checkpoints_dir() / "vision"), layer),
                "assistant's tower": tower_features(assistant.vision, layer),
                "assistant's image tokens (projector)": projector_features(assistant)}
    for folder in args.towers:
        features[f"tower {folder.name}"] = tower_features(load_vision_encoder(folder), layer)
    for folder in args.assistants:
        other = load_mllm(folder)[0].eval()
        features[f"{folder.name}'s tower"] = tower_features(other.vision, layer)
        features[f"{folder.name}'s image tokens"] = projector_features(other)

    results = {}
    print(f"linear probes trained on {args.n_train} one-object images of seen pairs "
          f"({args.train}), tested on "
          f"{args.n_test} fresh seen and {args.n_test} held-out; chance shape {1 / 6:.3f}, "
          f"colour {1 / 8:.3f}; features of layer {layer}")
    for name, fn in features.items():
        for where in ("image", "object") if args.train == "palette" else ("object",):
            results[f"{name}, {where} tokens"] = r = probe(fn, train_px, train_y, tests, where)
            print(f"{name:38s} {where:6s} " + ", ".join(f"{k} {v:.3f}" for k, v in r.items()),
                  flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"train": args.train, "n_train": args.n_train,
                                    "n_test": args.n_test,
                                    "layer": layer, "results": results}, indent=1))


if __name__ == "__main__":
    main()
