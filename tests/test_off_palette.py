"""scripts/off_palette.py: objects painted off the palette, shape replies without colour words,
and batches whose other tasks are chapter 07's."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from off_palette import (  # noqa: E402
    MIN_DISTANCE,
    OffPaletteBatches,
    off_palette_colour,
    render_off_palette,
    shapes_reply,
)

from minimllm.assistant import InstructionBatches  # noqa: E402
from minimllm.chat import ChatProcessor  # noqa: E402
from minimllm.data import (  # noqa: E402
    BACKGROUND_RGB,
    COLORS,
    HELDOUT_PAIRS,
    RGB,
    SHAPES,
    render_scene,
    sample_scene,
    text_corpus,
)
from minimllm.tokenizer import train_tokenizer  # noqa: E402
from minimllm.vision import to_pixel_values  # noqa: E402


def test_off_palette_colours_keep_their_distance():
    rng = np.random.default_rng(0)
    palette = np.array([*RGB.values(), BACKGROUND_RGB], dtype=float)
    for _ in range(200):
        rgb = np.array(off_palette_colour(rng), dtype=float)
        assert np.linalg.norm(palette - rgb, axis=1).min() >= MIN_DISTANCE


def test_render_paints_each_object_its_colour_and_leaves_the_palette_alone():
    scene = sample_scene(np.random.default_rng(5), min_objects=2, max_objects=2)
    same = render_off_palette(scene, [RGB[o["color"]] for o in scene["objects"]])
    assert (np.asarray(same) == np.asarray(render_scene(scene))).all()
    before = dict(RGB)
    image = np.asarray(render_off_palette(scene, [(250, 0, 250), (0, 250, 0)]), dtype=int)
    assert RGB == before
    for obj, rgb in zip(scene["objects"], [(250, 0, 250), (0, 250, 0)]):
        x, y = (np.array(obj["center"]) * 64).astype(int)
        assert np.abs(image[y, x] - rgb).max() <= 1  # the centre pixel has the object's colour


def test_shapes_reply_names_sizes_shapes_and_positions_but_no_colour():
    scene = sample_scene(np.random.default_rng(2), min_objects=3, max_objects=3)
    reply = shapes_reply(scene)
    assert not set(reply.replace(".", "").replace(",", "").split()) & set(COLORS)
    for o in scene["objects"]:
        assert f"{o['size']} {o['shape']} in the {o['position']}" in reply


def test_batches_add_the_shapes_task_and_leave_chapter_07s_tasks_as_they_were():
    scenes = [sample_scene(np.random.default_rng(s), image_size=32) for s in range(8)]
    pixels = to_pixel_values([render_scene(s) for s in scenes])
    tokenizer = train_tokenizer(text_corpus(n_scenes=60, seed=0), vocab_size=300)
    processor = ChatProcessor(tokenizer, num_image_tokens=4, image_size=32)
    mixture = {"describe": 0.5, "shapes": 0.5}
    ours = OffPaletteBatches(processor, scenes, pixels, mixture, batch_size=4, seed=0)
    plain = InstructionBatches(processor, scenes, pixels, {"describe": 0.5, "vqa": 0.5},
                               batch_size=4, seed=0)  # the same draws of task and rows
    tasks = []
    for step in range(12):
        tasks.append(ours.tasks[np.random.default_rng([0, step]).choice(2, p=ours.weights)])
        batch = ours(step)
        assert batch["pixel_values"].shape == (4, 3, 32, 32)
        said = tokenizer.decode([i for i, label in zip(batch["input_ids"][0],
                                                       batch["labels"][0]) if label != -100])
        if tasks[-1] == "shapes":
            assert not set(said.replace(".", " ").replace(",", " ").split()) & set(COLORS)
            assert any(s in said for s in SHAPES)
        else:
            assert (batch["input_ids"] == plain(step)["input_ids"]).all()
    assert set(tasks) == {"describe", "shapes"}


def test_colour_free_tower_pairs_are_painted_off_the_palette_and_captioned_without_colour():
    from colour_free_tower import off_palette_pairs

    pairs = off_palette_pairs(6, seed=0, captions_per_scene=2)
    assert pairs["pixel_values"].shape == (6, 3, 64, 64) and len(pairs["captions"]) == 6
    for scene, captions in zip(pairs["scenes"], pairs["captions"]):
        assert captions == [shapes_reply(scene)] * 2
        assert all((o["color"], o["shape"]) not in HELDOUT_PAIRS for o in scene["objects"])
