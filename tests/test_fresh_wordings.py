"""scripts/fresh_wordings.py: the fresh wordings are new, every test row is asked in one of its
type, and the held-out templates are back in place afterwards."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import fresh_wordings  # noqa: E402

import minimllm.data  # noqa: E402


def test_fresh_rows_use_only_fresh_wordings_and_restore_the_held_out_ones():
    before = dict(minimllm.data.HELDOUT_TEMPLATES)
    test = minimllm.data.load_dataset(n_train=8, n_test=40, n_compositional=4)["test"]
    rows = fresh_wordings.fresh_rows(test)
    assert minimllm.data.HELDOUT_TEMPLATES == before
    assert [r["qtype"] for r in rows] == list(test["qtype"])
    used = {(r["qtype"], fresh_wordings.wording_of(r["question"], r["qtype"])) for r in rows}
    assert len(used) > 7  # more than one wording per type shows up in 40 questions
    for r in rows:
        assert r["question"] not in test["question"]


def test_a_wording_in_use_is_refused(monkeypatch):
    fresh_wordings.check_fresh()
    monkeypatch.setitem(fresh_wordings.FRESH_TEMPLATES, "size",
                        (minimllm.data.TEMPLATES["size"][0],))
    with pytest.raises(ValueError, match="not a fresh wording"):
        fresh_wordings.check_fresh()
    with pytest.raises(ValueError, match="no fresh wording"):
        fresh_wordings.wording_of("what is this?", "color")
