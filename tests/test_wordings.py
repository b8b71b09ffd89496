"""scripts/wordings.py: stage 2's questions in half the training wordings, the held-out ones
untouched."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import minimllm.data as data  # noqa: E402
from minimllm.data import make_questions, sample_scene  # noqa: E402


def test_fewer_wordings_keeps_every_other_training_wording_and_no_held_out_one(monkeypatch):
    from wordings import use_fewer_wordings

    monkeypatch.setattr(data, "TEMPLATES", dict(data.TEMPLATES))  # restored after the test
    before, heldout = dict(data.TEMPLATES), {k: v for k, v in data.HELDOUT_TEMPLATES.items()}
    assert use_fewer_wordings() == {"wordings": "every other training wording of each type"}
    for kind, templates in before.items():
        assert data.TEMPLATES[kind] == templates[::2] and len(templates[::2]) >= 1
    assert data.HELDOUT_TEMPLATES == heldout
    rng, kept = np.random.default_rng(0), {t.split("{")[0] for t in data.TEMPLATES["size"]}
    dropped = {t.split("{")[0] for t in before["size"][1::2]} - kept
    asked = [q["question"] for _ in range(200)
             for q in make_questions(sample_scene(rng), rng, ["size"])]
    assert asked and not any(q.startswith(p) for q in asked for p in dropped if p)


def test_each_training_question_falls_in_the_kept_or_the_dropped_wordings():
    from wordings import wording_group

    rng = np.random.default_rng(1)
    for kind in ("color", "shape", "size", "position", "count", "relation", "existence"):
        for q in make_questions(sample_scene(rng), rng, [kind] * 20):
            assert wording_group(q["question"], kind) in ("kept", "dropped", "both")
    size = data.TEMPLATES["size"]
    assert wording_group(size[0].format(ref="red circle"), "size") == "kept"
    assert wording_group(size[1].format(ref="red circle"), "size") == "dropped"
    with pytest.raises(ValueError, match="no training wording"):
        wording_group("how large is the red circle?", "size")  # a held-out wording
