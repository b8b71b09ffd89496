"""scripts/colour_noise.py: colour words before shape words in the assistant's reply are swapped
in the input only; everything else, and the labels, stay."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from colour_noise import colour_noise  # noqa: E402

COLOURS, SHAPES = torch.tensor([10, 11, 12]), torch.tensor([20, 21])


def test_only_labelled_colours_before_a_shape_change_to_another_colour():
    #                         user: colour shape | reply: colour shape, colour other, colour shape
    ids = torch.tensor([[10, 20, 10, 21, 11, 5, 12, 20]] * 64)
    labels = torch.tensor([[-100, -100, 10, 21, 11, 5, 12, 20]] * 64)
    out = colour_noise(ids, labels, COLOURS, SHAPES, 0.5, torch.Generator().manual_seed(0))
    changed = out != ids
    assert not changed[:, [0, 1, 3, 4, 5, 7]].any()  # user text, shapes, a colour before no shape
    assert 0.3 < changed[:, [2, 6]].float().mean() < 0.7  # about half of the candidates
    assert torch.isin(out[changed], COLOURS).all()  # swapped for a colour ...
    assert (out[changed] != ids[changed]).all()  # ... another one


def test_no_noise_changes_nothing_and_all_noise_changes_every_candidate():
    ids = torch.tensor([[10, 20, 11, 21, 12]])
    labels = ids.clone()
    gen = torch.Generator().manual_seed(1)
    assert torch.equal(colour_noise(ids, labels, COLOURS, SHAPES, 0.0, gen), ids)
    out = colour_noise(ids, labels, COLOURS, SHAPES, 1.0, gen)
    assert (out[0, [0, 2]] != ids[0, [0, 2]]).all() and out[0, 4] == 12  # 12 precedes no shape
