"""scripts/bench_mllm.py in quick mode: every row of the table, each set-up timed, the twins
checked against ours before they are timed, and the FLOPs counted."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import bench_mllm  # noqa: E402


def test_quick_benchmark_prints_every_row(capsys):
    rows = bench_mllm.main(["--quick", "--levers"])
    out = capsys.readouterr().out
    names = [row.name for row in rows]
    assert [n.split()[0] for n in names] == ["lm", "captioner", "captioner", "assistant",
                                             "assistant"]
    for row in rows:
        assert row.name in out
        assert {"ours", "transformers"} <= set(row.times)
        assert all(t > 0 for times in row.times.values() for t in times)
        assert row.flops["ours"] > 0 and set(row.flops) >= set(row.times)
    assert "fp32 matmul peak" in out and "twin/this" in out
    step = next(row for row in rows if row.name == "assistant stage-2 step")
    assert {"ours", "padded", "fused adamw", "channels-last"} <= set(step.times)


def test_the_twin_has_our_trainable_set_and_logits():
    model, batches = bench_mllm.mllm_setup("assistant", quick=True)
    from minimllm.export import to_transformers

    twin = to_transformers(model).train()
    bench_mllm.match_trainable(model, twin, to_transformers)
    assert bench_mllm.n_trainable(twin) == bench_mllm.n_trainable(model) > 0
    assert bench_mllm.check_twin(model, twin, batches[0]) < 1e-4
    with torch.no_grad():  # a different model is caught
        next(p for p in twin.parameters() if p.requires_grad).add_(1.0)
    with pytest.raises(RuntimeError, match="not the same model"):
        bench_mllm.check_twin(model, twin, batches[0])


def test_flop_count_of_a_matmul():
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    assert bench_mllm.count_flops(lambda: a @ b) == 2 * 8 * 16 * 4


def test_the_channels_last_copy_changes_the_layout_not_the_loss():
    model, batches = bench_mllm.mllm_setup("assistant", quick=True)
    copy = bench_mllm.channels_last(model)
    conv = next(p for p in copy.parameters() if p.ndim == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last)
    from minimllm.assistant import chat_loss
    with torch.no_grad():
        assert torch.allclose(chat_loss(model, batches[0]), chat_loss(copy, batches[0]),
                              atol=1e-5)


def test_rank_benchmark_times_both_set_ups_and_splits_rows_with_their_images():
    import bench_ranks

    medians = bench_ranks.main(["--quick"])
    assert set(medians) == {"1 process x 2 threads", "2 ranks x 1 thread"}
    assert all(m > 0 for m in medians.values())
    model, batches = bench_mllm.mllm_setup("assistant", quick=True)
    batch = next(b for b in batches if "pixel_values" in b)
    halves = [bench_ranks.rows_of(batch, list(range(r, len(batch["input_ids"]), 2)))
              for r in range(2)]
    assert sum(len(h["input_ids"]) for h in halves) == len(batch["input_ids"])
    assert sum(len(h["pixel_values"]) for h in halves if h.get("pixel_values") is not None) \
        == len(batch["pixel_values"])
