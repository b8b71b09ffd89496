"""Property-based tests (Hypothesis) of quantization from scratch (minimllm.quant): valid float
tensors round-trip within half a quantization step; empty, NaN, integer or non-tensor input and
bit widths or block sizes outside their domain raise ValueError / TypeError from minimllm's own
code, with a message that names the argument. The helpers come from tests/test_properties.py."""

import torch
from hypothesis import given
from hypothesis import strategies as st
from test_properties import call_rejects, seeds

from minimllm.quant import (
    absmax_dequantize,
    absmax_quantize,
    bits_per_weight,
    blockwise_quantize,
    double_quantize,
    int_codebook,
    nf4_codebook,
)

shapes = st.lists(st.integers(1, 9), min_size=1, max_size=3)


@given(seeds, shapes, st.integers(2, 8), st.sampled_from([None, 0]))
def test_absmax_round_trips_within_half_a_step(seed, shape, bits, dim):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 3
    q, scale = absmax_quantize(x, bits, dim)
    assert q.dtype == torch.int8 and q.shape == x.shape
    assert q.abs().max() <= 2 ** (bits - 1) - 1
    assert ((absmax_dequantize(q, scale) - x).abs() <= scale / 2 + 1e-6).all()


@given(seeds, st.integers(1, 300), st.sampled_from([1, 7, 64]), st.booleans())
def test_blockwise_round_trips_to_the_nearest_code(seed, n, blocksize, nf4):
    x = torch.randn(n, generator=torch.Generator().manual_seed(seed))
    codebook = nf4_codebook() if nf4 else int_codebook(4)
    b = blockwise_quantize(x, codebook, blocksize)
    y = b.dequantize()
    assert y.shape == x.shape
    gaps = (codebook[1:] - codebook[:-1]).max()  # the widest gap between neighbouring codes
    per_value = b.absmax.repeat_interleave(blocksize)[:n]
    assert ((y - x).abs() <= per_value * gaps / 2 + 1e-6).all()
    d = double_quantize(b.absmax, blocksize=3)
    assert d.dequantize().shape == b.absmax.shape


@given(st.sampled_from(["empty", "nan", "inf", "int", "list"]))
def test_what_cannot_be_quantized_is_refused_by_name(how):
    bad = {"empty": torch.zeros(0), "nan": torch.tensor([float("nan"), 1.0]),
           "inf": torch.tensor([float("inf"), 1.0]), "int": torch.ones(4, dtype=torch.long),
           "list": [1.0, 2.0]}[how]
    call_rejects(lambda: absmax_quantize(bad), ["x"])
    call_rejects(lambda: blockwise_quantize(bad, nf4_codebook(), 4), ["x"])
    call_rejects(lambda: double_quantize(bad), ["absmax"])


@given(st.sampled_from([0, 1, 9, 2.5, "4", True]))
def test_bit_widths_outside_2_to_8_are_refused(bits):
    call_rejects(lambda: absmax_quantize(torch.ones(4), bits), ["bits"])
    call_rejects(lambda: int_codebook(bits), ["bits"])


@given(st.sampled_from([0, -64, 2.0, "64"]))
def test_bad_block_sizes_are_refused_by_name(blocksize):
    call_rejects(lambda: blockwise_quantize(torch.ones(8), nf4_codebook(), blocksize),
                 ["blocksize"])
    call_rejects(lambda: double_quantize(torch.ones(8), blocksize), ["blocksize"])
    call_rejects(lambda: bits_per_weight(4, blocksize), ["blocksize"])
    call_rejects(lambda: bits_per_weight(4, 64, True, blocksize), ["blocksize2"])
