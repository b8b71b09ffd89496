"""scripts/assistant_sweep.py: the random tower it can start stage 2 from."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from assistant_sweep import random_tower  # noqa: E402

from minimllm.contrastive import load_vision_encoder  # noqa: E402
from minimllm.utils import checkpoints_dir  # noqa: E402


def test_random_tower_has_the_reference_architecture_and_none_of_its_weights(tmp_path):
    path = random_tower(tmp_path / "random")
    tower, reference = load_vision_encoder(path), load_vision_encoder(checkpoints_dir() / "vision")
    assert tower.config == reference.config
    ours, theirs = tower.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys()
    assert not any(torch.equal(ours[k], theirs[k]) for k in ours if ours[k].std() > 0)
    # made once: a second call keeps the saved weights
    saved = (path / "model.safetensors").stat().st_mtime_ns
    assert random_tower(path) == path and (path / "model.safetensors").stat().st_mtime_ns == saved
