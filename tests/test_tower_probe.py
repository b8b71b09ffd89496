"""scripts/tower_probe.py: the object's tokens, pooling, and a probe that reads what it should."""

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from tower_probe import (  # noqa: E402
    object_tokens,
    one_object_images,
    pixel_features,
    pooled,
    probe,
)


def test_object_tokens_are_the_cells_under_the_box():
    boxes = np.array([[0, 0, 20, 20], [40, 40, 63, 63], [30, 30, 33, 33]], dtype=float)
    mask = object_tokens(boxes, 4).reshape(3, 4, 4)  # cells of 16 px, centres at 8, 24, 40, 56
    assert mask[0].nonzero().tolist() == [[0, 0]]
    assert mask[1].nonzero().tolist() == [[2, 2], [2, 3], [3, 2], [3, 3]]
    assert mask[2].nonzero().tolist() == [[1, 1]]  # no centre inside: the box centre's cell


def test_pooling_over_the_object_ignores_the_other_tokens():
    tokens = torch.zeros(1, 4, 2)
    tokens[0, 0] = torch.tensor([1.0, 3.0])
    tokens[0, 3] = 100.0  # far from the object
    out = pooled(tokens, np.array([[0, 0, 20, 20]], dtype=float), "object")
    assert out.tolist() == [[1.0, 3.0, 1.0, 3.0]]
    assert pooled(tokens, None, "image")[0, 2:].tolist() == [100.0, 100.0]


def test_pixels_probed_off_the_palette_read_shape_above_chance():
    train_px, train_y = one_object_images(300, 0, heldout=False, off_palette=True)
    assert "colour" not in train_y  # painted off the palette: the scene's colour is not shown
    tests = {"seen": one_object_images(200, 1, heldout=False)}
    accuracy = probe(pixel_features, train_px, train_y, tests, "object")["shape, seen"]
    assert accuracy > 0.25  # chance 1/6
