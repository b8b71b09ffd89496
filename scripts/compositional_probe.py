"""Where does a held-out (colour, shape) pair get lost? Linear probes along the image path.

The assistant names the shape of an object whose (colour, shape) pair it never saw in training
(`data.HELDOUT_PAIRS`, the test_compositional split) far less often than on test scenes. Either
the image features do not carry the shape of such an object, or they do and what follows (the
projector, the LM writing "red" then a shape word it never read after "red") loses it. A linear
probe answers the first part: fit a shape (and a colour) classifier on features of one-object
images of *training* pairs, then score it on fresh images of training pairs and of held-out pairs.
A probe that reads held-out pairs as well as seen ones says the features compose.

    python scripts/compositional_probe.py                       # the reference vision tower
    python scripts/compositional_probe.py --model data/artifacts/assistant   # an MLLM's image path

Features probed: the vision encoder's output at the model's `vision_feature_layer`, mean-pooled
over all patches and over the object's patches, and (with --model) the projector's image
tokens, flattened. `--random-tower` probes an untrained tower of the same shape, a control whose
features hold no learned pairs. With --model the
script also asks the model to describe 200 one-object images of each kind and counts what it
names, and, teacher-forced after "a <size> <colour>", which shape it ranks first: with the
object's colour, and with another colour the shape is seen with.
"""
import argparse

import numpy as np
import torch

from minimllm.data import COLORS, HELDOUT_PAIRS, SHAPES, render_scene, sample_scene
from minimllm.vision import to_pixel_values


def one_object_images(n: int, seed: int, heldout: bool):
    """n one-object scenes: every object of a held-out pair (heldout=True) or of none."""
    rng = np.random.default_rng(seed)
    kw = {"require_pairs": HELDOUT_PAIRS} if heldout else {"exclude_pairs": HELDOUT_PAIRS}
    scenes = [sample_scene(rng, n_objects=1, **kw) for _ in range(n)]
    images = [render_scene(s) for s in scenes]
    pixels = to_pixel_values(images)
    shapes = torch.tensor([SHAPES.index(s["objects"][0]["shape"]) for s in scenes])
    colors = torch.tensor([COLORS.index(s["objects"][0]["color"]) for s in scenes])
    boxes = torch.tensor([s["objects"][0]["bbox"] for s in scenes])  # (n, 4) x0, y0, x1, y1
    return pixels, shapes, colors, images, boxes, scenes


def object_mask(boxes: torch.Tensor, image_size: int, patch_size: int) -> torch.Tensor:
    """(n, 4) pixel boxes -> (n, N) 0/1 weights of the patches each box overlaps (row-major)."""
    grid = image_size // patch_size
    lo = torch.arange(grid) * patch_size  # each patch row's / column's first pixel
    cols = (lo + patch_size > boxes[:, None, 0]) & (lo <= boxes[:, None, 2])  # (n, grid)
    rows = (lo + patch_size > boxes[:, None, 1]) & (lo <= boxes[:, None, 3])  # (n, grid)
    return (rows[:, :, None] & cols[:, None, :]).flatten(1).float()          # (n, grid * grid)


@torch.no_grad()
def featurize(pixels, boxes, vision, layer, projector=None, batch: int = 256):
    """(n, 3, S, S) -> {"encoder": (n, D_v) mean over patches, "object": (n, D_v) mean over the
    object's patches, "projector": (n, M * D_lm)}."""
    out = {"encoder": [], "object": [], "projector": []}
    mask = object_mask(boxes, vision.config.image_size, vision.config.patch_size)  # (n, N)
    for i in range(0, len(pixels), batch):
        h = vision(pixels[i:i + batch], feature_layer=layer).last_hidden_state  # (b, N, D_v)
        out["encoder"].append(h.mean(1))
        m = mask[i:i + batch, :, None]                                           # (b, N, 1)
        out["object"].append((h * m).sum(1) / m.sum(1))
        if projector is not None:
            out["projector"].append(projector(h).flatten(1))  # (b, M * D_lm)
    return {k: torch.cat(v) for k, v in out.items() if v}


def probe(x_train, y_train, tests: dict, classes: int, steps: int = 500, seed: int = 0) -> dict:
    """A linear softmax classifier (standardised inputs, AdamW, weight decay) fit on the training
    features; its accuracy on each test set."""
    torch.manual_seed(seed)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-5
    head = torch.nn.Linear(x_train.shape[1], classes)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=1e-2)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(head((x_train - mean) / std), y_train)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return {name: float((head((x - mean) / std).argmax(-1) == y).float().mean())
                for name, (x, y) in tests.items()}


def describe_one_object(model, processor, images, shapes, colors) -> dict:
    """What the model says when asked to describe a one-object image: the share of descriptions
    naming the right colour, the right shape, both; and, of the wrong shapes, the share that make
    a (colour said, shape said) pair seen in training."""
    from minimllm.chat import chat, image_turn

    replies = chat(model, processor, [[image_turn("describe the image.")]] * len(images), images,
                   max_new_tokens=24)
    said = [(next((c for c in COLORS if f" {c} " in f" {r} "), None),
             next((s for s in SHAPES if f" {s}" in f" {r}"), None)) for r in replies]
    color_ok = [c == COLORS[k] for (c, _), k in zip(said, colors.tolist())]
    shape_ok = [s == SHAPES[k] for (_, s), k in zip(said, shapes.tolist())]
    wrong = [(c, s) for (c, s), ok in zip(said, shape_ok) if not ok]
    return {"colour": np.mean(color_ok), "shape": np.mean(shape_ok),
            "both": np.mean([a and b for a, b in zip(color_ok, shape_ok)]),
            "wrong shape makes a seen pair": (np.mean([p not in HELDOUT_PAIRS for p in wrong])
                                              if wrong else float("nan")),
            "example": replies[0]}


def shape_token_ids(tokenizer) -> list[int]:
    """The first token of " <shape>" for each of `SHAPES`, refusing shapes that share one."""
    firsts = [tokenizer(" " + shape, add_special_tokens=False).input_ids[0] for shape in SHAPES]
    assert len(set(firsts)) == len(SHAPES), "shape words must start with distinct tokens"
    return firsts


def described_up_to_colour(processor, obj: dict, color: str) -> list[int]:
    """Token ids of the reply to "describe the image.", teacher-forced up to "a {size} {color}"
    (the prompt and the generation prompt before it)."""
    from minimllm.chat import image_turn

    ids = processor.tokenize([image_turn("describe the image.")], add_generation_prompt=True)[0]
    return ids + processor.tokenizer(f"a {obj['size']} {color}",
                                     add_special_tokens=False).input_ids


@torch.no_grad()
def shape_after_colour(model, processor, scenes_images, swap: bool) -> float:
    """Teacher-forced: the reply to "describe the image." up to "a {size} {colour}", then which
    shape word the model ranks first among `SHAPES`; the share that is the object's shape.
    `swap=True` writes another colour, one the object's shape is seen with in training: if the
    model then names the shape, the image tokens carry it and the colour word's pull is what
    hides it."""
    firsts = shape_token_ids(processor.tokenizer)
    rng, right = np.random.default_rng(0), []
    for scene, image in scenes_images:
        obj = scene["objects"][0]
        color = obj["color"]
        if swap:
            color = str(rng.choice([c for c in COLORS if c != obj["color"]
                                    and (c, obj["shape"]) not in HELDOUT_PAIRS]))
        ids = described_up_to_colour(processor, obj, color)
        logits = model(torch.tensor([ids]), processor.pixel_values([image])).logits[0, -1]
        right.append(SHAPES[int(logits[firsts].argmax())] == obj["shape"])
    return float(np.mean(right))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a saved MLLM folder (default: the reference vision tower)")
    parser.add_argument("--n-train", type=int, default=3000)
    parser.add_argument("--n-test", type=int, default=800)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--no-probes", action="store_true",
                        help="with --model: only what the model names, no linear probes")
    parser.add_argument("--random-tower", action="store_true",
                        help="a ViT of the same shape, untrained (a control: no learned pairs)")
    args = parser.parse_args()

    if args.model:
        from minimllm.chat import load_mllm

        model, processor = load_mllm(args.model, device="cpu")
        vision, layer, projector = model.vision, model.config.vision_feature_layer, model.projector
    else:
        from minimllm.mllm import load_towers

        vision = load_towers(reference=True, device="cpu")[0].eval()
        layer, projector = -4, None  # the assistant's vision_feature_layer
        if args.random_tower:
            from minimllm.vision import VisionTransformer

            torch.manual_seed(0)
            vision = VisionTransformer(vision.config).eval()
    for seed in args.seeds:
        train = one_object_images(args.n_train, 1000 + seed, heldout=False)
        seen = one_object_images(args.n_test, 2000 + seed, heldout=False)
        unseen = one_object_images(args.n_test, 3000 + seed, heldout=True)
        feats = ([{}] * 3 if args.no_probes else
                 [featurize(p, b, vision, layer, projector)
                  for p, *_, b, _ in (train, seen, unseen)])
        for where in feats[0]:
            for attr, k, classes in (("shape", 1, len(SHAPES)), ("colour", 2, len(COLORS))):
                acc = probe(feats[0][where], train[k],
                            {"seen pairs": (feats[1][where], seen[k]),
                             "held-out pairs": (feats[2][where], unseen[k])}, classes, seed=seed)
                print(f"seed {seed}  {where:9s} {attr:6s} " +
                      "  ".join(f"{name} {v:.3f}" for name, v in acc.items()), flush=True)
        if args.model:
            for name, (_, s, c, images, _, scenes) in (("seen pairs", seen),
                                                        ("held-out pairs", unseen)):
                said = describe_one_object(model, processor, images[:200], s[:200], c[:200])
                print(f"seed {seed}  described, {name}: " + ", ".join(
                    f"{k} {v:.3f}" if not isinstance(v, str) else f"{k} {v!r}"
                    for k, v in said.items()), flush=True)
                pairs = list(zip(scenes[:200], images[:200]))
                print(f"seed {seed}  shape ranked first after 'a <size> <colour>', {name}: "
                      f"true colour {shape_after_colour(model, processor, pairs, False):.3f}, "
                      f"another colour {shape_after_colour(model, processor, pairs, True):.3f}",
                      flush=True)


if __name__ == "__main__":
    main()
