"""Property-based tests (Hypothesis) of the projectors (minimllm.projectors): every projector, built
by name, maps valid visual features (B, N, d_vision) to finite tokens (B, M, d_lm) with M as it
says; invalid features and settings raise ValueError / TypeError from minimllm's own code, with a
message that names the argument. The helpers come from tests/test_properties.py."""

import functools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from test_properties import call_rejects, seeds

from minimllm.projectors import (
    DEFAULT_NUM_TOKENS,
    PROJECTORS,
    MultiHeadAttention,
    ProjectorConfig,
    adaptive_pool_tokens,
    build_projector,
    grid_to_tokens,
    pixel_shuffle,
    receptive_field,
    temporal_pixel_shuffle,
    tokens_to_grid,
)

DV, DLM = 8, 12
KINDS = sorted(PROJECTORS)
SMALL = {"resampler": {"num_heads": 2, "depth": 1}, "qformer": {"num_heads": 2, "depth": 1},
         "d_abstractor": {"num_heads": 2, "num_points": 2}}  # tiny, for speed
GRID_BOUND = {"pixel_shuffle", "c_abstractor", "d_abstractor"}  # need a square grid of patches


@functools.cache
def projector(kind, num_tokens=None, n_patches=None):
    torch.manual_seed(0)
    return build_projector(kind, DV, DLM, num_tokens, n_patches, **SMALL.get(kind, {})).eval()


def features(b, n, seed, d=DV):
    return torch.randn(b, n, d, generator=torch.Generator().manual_seed(seed))


# --- valid features -----------------------------------------------------------------------

@st.composite
def valid_settings(draw):
    """(kind, num_tokens, g): a projector and a square g x g grid of patches it can use."""
    kind = draw(st.sampled_from(KINDS))
    g = draw(st.integers(1, 6))
    if kind in ("linear", "mlp"):
        return kind, None, g
    if kind == "pixel_shuffle":
        s = draw(st.sampled_from([s for s in range(1, g + 1) if g % s == 0]))
        return kind, (g // s) ** 2, g
    if kind in ("resampler", "qformer"):
        return kind, draw(st.integers(1, 20)), g
    return kind, draw(st.integers(1, g)) ** 2, g  # the abstractors: square M <= N


@given(settings=valid_settings(), b=st.integers(1, 3), seed=seeds)
def test_every_projector_makes_the_tokens_it_says(settings, b, seed):
    kind, m, g = settings
    proj = projector(kind, m, g * g)
    want = proj.num_tokens(g * g)
    assert m is None or want == m
    with torch.no_grad():
        out = proj(features(b, g * g, seed))
    assert out.shape == (b, want, DLM) and torch.isfinite(out).all()
    assert proj.config.build().num_tokens(g * g) == want  # the config rebuilds the same projector


@given(kind=st.sampled_from(KINDS), b=st.integers(1, 3), seed=seeds)
def test_images_in_a_batch_do_not_interact(kind, b, seed):
    proj = projector(kind)
    x = features(b + 1, DEFAULT_NUM_TOKENS, seed)
    with torch.no_grad():
        torch.testing.assert_close(proj(x)[:b], proj(x[:b]), atol=1e-5, rtol=1e-5)


@given(kind=st.sampled_from(["linear", "mlp", "resampler", "qformer"]), n=st.integers(1, 20),
       seed=seeds)
def test_projectors_without_a_grid_take_any_number_of_patches(kind, n, seed):
    proj = projector(kind)
    with torch.no_grad():
        out = proj(features(2, n, seed))
    assert out.shape == (2, proj.num_tokens(n), DLM) and torch.isfinite(out).all()


# --- invalid features ---------------------------------------------------------------------

def _bad_features(seed):
    x = features(2, 16, seed)
    nan = x.clone()
    nan.view(-1)[seed % nan.numel()] = [float("nan"), float("inf"), -float("inf")][seed % 3]
    yield x[0], ["visual features", "(batch, tokens, d_vision)"]     # no batch dimension
    yield x[None], ["visual features", "(batch, tokens, d_vision)"]
    yield x.transpose(1, 2).reshape(2, DV, 4, 4), ["visual features", "flatten"]  # a map
    yield features(2, 16, seed, d=DV + 1), ["d_vision=8"]
    yield x[:0], ["visual features", "no tokens"]                    # an empty batch
    yield x[:, :0], ["visual features", "no tokens"]                 # no patches
    yield x.long(), ["visual features", "float"]
    yield x > 0, ["visual features", "float"]
    yield x.double(), ["visual features", "float64", "x.to"]
    yield x.tolist(), ["visual features", "list"]
    yield nan, ["visual features", "NaN"]


@pytest.mark.parametrize("k", range(len(list(_bad_features(0)))))
@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 10**6))
def test_every_projector_refuses_bad_features(kind, k, seed):
    bad, words = list(_bad_features(seed))[k]
    call_rejects(lambda: projector(kind)(bad), words)


@given(kind=st.sampled_from(sorted(GRID_BOUND)),
       n=st.integers(2, 40).filter(lambda n: int(n ** 0.5) ** 2 != n))
def test_grid_projectors_refuse_patches_off_a_square_grid(kind, n):
    call_rejects(lambda: projector(kind)(features(1, n, 0)), ["square grid"])


@given(kind=st.sampled_from(["c_abstractor", "d_abstractor"]), g=st.integers(1, 3))
def test_abstractors_refuse_more_tokens_than_patches(kind, g):
    # M = 16 by default: more than a g x g grid holds
    call_rejects(lambda: projector(kind)(features(1, g * g, 0)), ["M", "N"]
                 if kind == "d_abstractor" else ["num_tokens"])


# --- invalid settings ---------------------------------------------------------------------

BAD_INTS = [0, -3, 2.5, True, "4", None]


@given(kind=st.sampled_from(KINDS), which=st.sampled_from(["d_vision", "d_lm"]),
       value=st.sampled_from(BAD_INTS))
def test_bad_widths_are_refused_by_name(kind, which, value):
    widths = {"d_vision": DV, "d_lm": DLM, which: value}
    call_rejects(lambda: build_projector(kind, **widths, **SMALL.get(kind, {})), [which])


OPTIONS = {  # each projector's integer settings, and the name its error must say
    "pixel_shuffle": ["scale_factor"],
    "resampler": ["num_latents", "depth", "num_heads", "ff_mult"],
    "qformer": ["num_queries", "depth", "num_heads", "ff_mult", "cross_attention_every",
                "hidden_size"],
    "c_abstractor": ["mlp_depth", "hidden_size"],
    "d_abstractor": ["num_heads", "num_points"],
}


@given(data=st.data(), value=st.sampled_from(BAD_INTS))
def test_bad_projector_options_are_refused_by_name(data, value):
    kind = data.draw(st.sampled_from(sorted(OPTIONS)))
    name = data.draw(st.sampled_from(OPTIONS[kind]))
    if value is None and name == "hidden_size":
        return  # None: the default width
    call_rejects(lambda: build_projector(kind, DV, DLM, **{**SMALL.get(kind, {}), name: value}),
                 [name])


@given(depth=st.sampled_from([-1, 1.5, True, "1", None]))
def test_the_c_abstractor_depth_may_be_zero_but_not_less(depth):
    assert build_projector("c_abstractor", DV, DLM, depth=0)(features(1, 16, 0)).shape == (
        1, DEFAULT_NUM_TOKENS, DLM)
    call_rejects(lambda: build_projector("c_abstractor", DV, DLM, depth=depth), ["depth"])


@given(case=st.sampled_from([
    (("transformer", DV, DLM), {}, ["unknown projector", "mlp"]),
    ((["mlp"], DV, DLM), {}, ["unknown projector"]),
    ((None, DV, DLM), {}, ["unknown projector"]),
    (("qformer", DV, DLM), {"num_tokens": 0}, ["num_tokens"]),
    (("qformer", DV, DLM), {"num_tokens": True}, ["num_tokens"]),
    (("qformer", DV, DLM), {"num_tokens": 2.0}, ["num_tokens"]),
    (("c_abstractor", DV, DLM), {"num_tokens": 5}, ["num_tokens=5", "square"]),
    (("d_abstractor", DV, DLM), {"num_tokens": 8, "num_heads": 2}, ["num_tokens=8", "square"]),
    (("c_abstractor", DV, DLM), {"num_tokens": 25, "n_patches": 16}, ["num_tokens <= 16"]),
    (("mlp", DV, DLM), {"num_tokens": 4}, ["num_tokens=None"]),
    (("linear", DV, DLM), {"num_tokens": 4, "n_patches": 16}, ["num_tokens"]),
    (("pixel_shuffle", DV, DLM), {"num_tokens": 4}, ["n_patches", "scale_factor"]),
    (("pixel_shuffle", DV, DLM), {"num_tokens": 3, "n_patches": 16}, ["M must be N / s^2"]),
    (("pixel_shuffle", DV, DLM), {"num_tokens": 4, "n_patches": 16, "scale_factor": 4},
     ["scale_factor=4"]),
    (("pixel_shuffle", DV, DLM), {"scale_factor": 3, "n_patches": 16}, ["factor 3"]),
    (("c_abstractor", DV, DLM), {"n_patches": 15}, ["square grid"]),
    (("mlp", DV, DLM), {"n_patches": 0}, ["n_patches"]),
    (("mlp", DV, DLM), {"n_patches": "16"}, ["n_patches"]),
    (("resampler", DV, DLM), {"num_heads": 3}, ["num_heads=3"]),
    (("d_abstractor", DV, DLM), {"num_heads": 3}, ["num_heads=3"]),
    (("mlp", DV, DLM), {"depth": 2}, ["depth"]),
]))
def test_bad_build_settings_are_refused_with_what_to_do(case):
    args, settings, words = case
    call_rejects(lambda: build_projector(*args, **settings), words)
    if isinstance(args[0], str) and args[0] in PROJECTORS:
        config = ProjectorConfig(args[0], DV, DLM, settings.pop("num_tokens", None),
                                 settings.pop("n_patches", None), settings)
        call_rejects(config.build, words)


# --- the token-grid functions -------------------------------------------------------------

@given(b=st.integers(1, 3), g=st.integers(1, 6), d=st.integers(1, 5), data=st.data(),
       seed=seeds)
def test_pixel_shuffle_only_moves_values(b, g, d, data, seed):
    s = data.draw(st.sampled_from([s for s in range(1, g + 1) if g % s == 0]))
    x = features(b, g * g, seed, d)
    out = pixel_shuffle(x, s)
    assert out.shape == (b, (g // s) ** 2, s * s * d)
    assert torch.equal(out.flatten(1).sort().values, x.flatten(1).sort().values)
    assert torch.equal(grid_to_tokens(tokens_to_grid(x)), x)


@given(s=st.sampled_from(BAD_INTS + [3]))
def test_pixel_shuffle_refuses_bad_factors(s):
    call_rejects(lambda: pixel_shuffle(features(1, 16, 0), s), ["factor" if s == 3 else
                                                                "scale_factor"])


@given(case=st.sampled_from([
    (lambda: pixel_shuffle(features(1, 16, 0)[0], 2), ["(B, N, D)"]),
    (lambda: tokens_to_grid(features(1, 16, 0)[0]), ["(B, N, D)"]),
    (lambda: tokens_to_grid(features(1, 15, 0)), ["square grid"]),
    (lambda: grid_to_tokens(features(1, 16, 0)), ["(B, D, h, w)"]),
    (lambda: adaptive_pool_tokens(features(1, 16, 0), 5), ["num_tokens=5"]),
    (lambda: adaptive_pool_tokens(features(1, 16, 0), 25), ["num_tokens", "<= 16"]),
    (lambda: temporal_pixel_shuffle(torch.zeros(4, 3), 2), ["(..., T, N, C)"]),
    (lambda: temporal_pixel_shuffle(torch.zeros(3, 4, 2), 2), ["t=2", "3 frames"]),
    (lambda: temporal_pixel_shuffle(torch.zeros(4, 4, 2), True), ["t=True"]),
    (lambda: temporal_pixel_shuffle(torch.zeros(4, 4, 2), 0), ["t=0"]),
    (lambda: MultiHeadAttention(8, 0), ["num_heads"]),
    (lambda: MultiHeadAttention(8, 2)(features(2, 4, 0), features(1, 4, 0)), ["context"]),
]))
def test_the_grid_functions_refuse_misshaped_tokens(case):
    fn, words = case
    call_rejects(fn, words)


@given(b=st.integers(1, 3), g=st.integers(1, 6), data=st.data(), seed=seeds)
def test_pooling_makes_fewer_tokens_and_keeps_the_mean(b, g, data, seed):
    side = data.draw(st.sampled_from([s for s in range(1, g + 1) if g % s == 0]))
    x = features(b, g * g, seed)
    out = adaptive_pool_tokens(x, side * side)
    assert out.shape == (b, side * side, DV)
    torch.testing.assert_close(out.mean(1), x.mean(1), atol=1e-5, rtol=1e-5)


@given(lead=st.lists(st.integers(1, 2), max_size=2), t=st.integers(1, 3), k=st.integers(1, 3),
       n=st.integers(1, 4), c=st.integers(1, 3), seed=seeds)
def test_temporal_pixel_shuffle_only_moves_values(lead, t, k, n, c, seed):
    x = torch.randn(*lead, t * k, n, c, generator=torch.Generator().manual_seed(seed))
    out = temporal_pixel_shuffle(x, k)
    assert out.shape == (*lead, t, n, k * c)
    assert torch.equal(out.flatten().sort().values, x.flatten().sort().values)


@given(kind=st.sampled_from(KINDS), token=st.integers(-40, 40))
def test_receptive_field_names_a_token_the_projector_makes(kind, token):
    proj = projector(kind)
    m = proj.num_tokens(DEFAULT_NUM_TOKENS)
    x = features(2, DEFAULT_NUM_TOKENS, 0)
    if -m <= token < m:
        field = receptive_field(proj, x, token)
        assert field.shape == (4, 4) and (field >= 0).all() and torch.isfinite(field).all()
    else:
        call_rejects(lambda: receptive_field(proj, x, token), ["token"])
