"""Shapes in colours off the palette: does reading shape apart from colour carry over to unseen
(colour, shape) pairs?

`scripts/word_order.py` found that the assistant reads the shape of a yellow star as a shape it
has seen in yellow even when no colour word of the object is written yet: its reading of shape
depends on the colour it sees. In stage 2 every shape comes in at most the palette's eight
colours, each colour with five or six of the six shapes, so a colour-dependent shape reader costs
nothing in training. This recipe adds a task in which it would: **shapes**, scenes whose objects
are painted in random colours *off* the palette (each at least `MIN_DISTANCE` from every palette
colour in RGB, and from the background), asked "what shapes do you see?" and answered with the
objects' sizes, shapes and positions, no colour word ("a large star in the top left and a small
circle in the center."). To name those shapes the model must read shape whatever the colour.

Nothing of a held-out pair is drawn: off-palette colours are no palette colour, and the scenes of
the other tasks keep `data.HELDOUT_PAIRS` out as before; test_compositional still measures pairs
never seen. The recipe is chapter 07's (`AssistantConfig()`) with "shapes" added to the mixture
at `--weight` (the other tasks keep their ratios), cached as `assistant_sweep.py` caches its own:

    python scripts/off_palette.py --seeds 0 1       # then: assistant_sweep.py --table
    python scripts/off_palette.py --views two --name two-views-off-palette \
        --cache data/checkpoints/assistant_sweeps/views.json --seeds 0 1   # scripts/two_views.py
"""
import argparse
from pathlib import Path

import numpy as np
from assistant_sweep import CACHE, example_answer, run_seeds
from two_views import add_views_option, use_views

import minimllm.assistant
import minimllm.data as data
from minimllm.assistant import TASKS, AssistantConfig, InstructionBatches
from minimllm.chat import image_turn
from minimllm.vision import to_pixel_values

MIN_DISTANCE = 80.0  # RGB distance from every palette colour (the closest two are 82.5 apart)
SHAPE_REQUESTS = ("what shapes do you see?", "which shapes are in the image?",
                  "name the shapes in the picture.")


def off_palette_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """A random RGB colour at least `MIN_DISTANCE` from every palette colour and the background."""
    palette = np.array([*data.RGB.values(), data.BACKGROUND_RGB], dtype=float)  # (9, 3)
    while True:
        rgb = rng.integers(0, 256, size=3)
        if np.linalg.norm(palette - rgb, axis=1).min() >= MIN_DISTANCE:
            return tuple(int(v) for v in rgb)


def render_off_palette(scene: dict, colours, image_size: int = 64):
    """The scene drawn as `data.render_scene` draws it, object i painted in `colours[i]`."""
    canvas = data._background(scene, image_size * data.SUPERSAMPLE)
    for obj, rgb in zip(scene["objects"], colours):
        palette_rgb = data.RGB[obj["color"]]
        data.RGB[obj["color"]] = rgb  # `_paint` looks the colour up by name
        try:
            data._paint(canvas, obj, [])
        finally:
            data.RGB[obj["color"]] = palette_rgb
    return canvas.reduce(data.SUPERSAMPLE)


def shapes_reply(scene: dict) -> str:
    """'a large star in the top left and a small circle in the center.': no colour words."""
    return data._join([f"{data._article(o['size'] + ' ' + o['shape'])} in the {o['position']}"
                       for o in scene["objects"]]) + "."


class OffPaletteBatches(InstructionBatches):
    """Chapter 07's batches plus the "shapes" task, whose images are drawn fresh at each step."""

    tasks_known = (*TASKS, "shapes")

    def __call__(self, step: int) -> dict:
        rng = np.random.default_rng([self.seed, step])  # as InstructionBatches draws the task
        if self.tasks[rng.choice(len(self.tasks), p=self.weights)] != "shapes":
            return super().__call__(step)
        scenes = [data.sample_scene(rng, min_objects=1, max_objects=4)
                  for _ in range(self.batch_size)]
        images = [render_off_palette(s, [off_palette_colour(rng) for _ in s["objects"]],
                                     self.pixel_values.shape[-1]) for s in scenes]
        conversations = [[image_turn(str(rng.choice(SHAPE_REQUESTS))),
                          {"role": "assistant", "content": shapes_reply(s)}] for s in scenes]
        batch = self.processor(conversations, to_pixel_values(images))
        batch.pop("attention_mask")
        return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", default="off-palette")
    parser.add_argument("--weight", type=float, default=0.15,
                        help="the shapes task's weight beside chapter 07's mixture (sum 1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--out-root", type=Path, default=Path("runs") / "assistant_sweeps")
    parser.add_argument("--tower", type=Path, default=None,
                        help="a vision tower folder to start from (colour_free_tower.py's), "
                             "instead of the reference")
    add_views_option(parser)
    args = parser.parse_args()
    views = use_views(args.views)
    config = AssistantConfig(**views)
    config.mixture = {**config.mixture, "shapes": args.weight}
    minimllm.assistant.InstructionBatches = OffPaletteBatches  # main_job's batches
    recipe = {"mixture": config.mixture, "shapes": "off-palette colours"}
    if args.tower is not None:
        from colour_free_tower import use_tower

        use_tower(args.tower)
        recipe["vision tower"] = args.tower.name
    recipe.update(views)
    run_seeds(args, recipe, config, example_answer(config))


if __name__ == "__main__":
    main()
