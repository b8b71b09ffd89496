"""Does an assistant read shape apart from colour? Ask a saved assistant about one-object images.

For 150 one-object images of each kind, seen (colour, shape) pairs, held-out pairs
(`data.HELDOUT_PAIRS`) and objects painted off the palette (`off_palette.render_off_palette`),
the model is asked "what shapes do you see?" (the request of `off_palette.py`'s shapes task,
answered with no colour word) and "describe the image."; the share of replies that name the
object's shape is printed, with one reply as an example.

    python scripts/shape_reading.py runs/assistant_sweeps/off-palette-s0
"""
import argparse

import numpy as np
from off_palette import SHAPE_REQUESTS, off_palette_colour, render_off_palette

from minimllm.chat import chat, image_turn, load_mllm
from minimllm.data import HELDOUT_PAIRS, render_scene, sample_scene


def shape_named(model, processor, scenes, images, request: str) -> tuple[float, str]:
    """The share of replies to `request` that name each image's one object's shape, and a reply."""
    replies = chat(model, processor, [[image_turn(request)]] * len(scenes), images)
    right = [s["objects"][0]["shape"] in r.replace(".", " ").split()
             for s, r in zip(scenes, replies)]
    return float(np.mean(right)), replies[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a saved assistant's folder")
    parser.add_argument("--n", type=int, default=150)
    args = parser.parse_args()
    model, processor = load_mllm(args.model, device="cpu")
    rng = np.random.default_rng(123)
    for kind in ("seen", "held-out", "off-palette"):
        kw = ({"require_pairs": HELDOUT_PAIRS} if kind == "held-out"
              else {"exclude_pairs": HELDOUT_PAIRS})
        scenes = [sample_scene(rng, n_objects=1, **kw) for _ in range(args.n)]
        images = [render_off_palette(s, [off_palette_colour(rng)]) if kind == "off-palette"
                  else render_scene(s) for s in scenes]
        obj = scenes[0]["objects"][0]
        what = f"a {obj['color']} {obj['shape']}" + (" off the palette" if kind == "off-palette"
                                                     else "")
        for request in (SHAPE_REQUESTS[0], "describe the image."):
            share, example = shape_named(model, processor, scenes, images, request)
            print(f"{kind:>11} {request!r:>27}: shape named {share:.3f}; e.g. {example!r} "
                  f"({what})")


if __name__ == "__main__":
    main()
