"""Tests of minimllm.projectors: shapes, gradients, locality vs non-locality, references,
bad input."""

import math

import pytest
import torch

from minimllm.projectors import (
    PROJECTORS,
    CAbstractor,
    DAbstractor,
    LinearProjector,
    MLPProjector,
    MultiHeadAttention,
    PerceiverResampler,
    PixelShuffleProjector,
    ProjectorConfig,
    QFormer,
    adaptive_pool_tokens,
    build_projector,
    grid_side,
    pixel_shuffle,
    receptive_field,
    temporal_pixel_shuffle,
)

DV, DL = 16, 24  # tiny widths (4 heads of 4)
G = 8            # an 8 x 8 grid of patch tokens, N = 64


def _feats(n=G * G, b=2, seed=0):
    return torch.randn(b, n, DV, generator=torch.Generator().manual_seed(seed))


def _changed_tokens(proj, x, patch, delta=3.0):
    """Indices of output tokens that change (at all) when one input patch is perturbed (in a random
    direction: a constant shift of all channels would be invisible to a LayerNorm)."""
    x2 = x.clone()
    x2[:, patch] += delta * torch.randn(x.shape[-1], generator=torch.Generator().manual_seed(patch))
    with torch.no_grad():
        diff = (proj(x2) - proj(x)).abs().amax(dim=(0, 2))
    return set(diff.nonzero().flatten().tolist())


CASES = [("linear", None, {}, 64), ("mlp", None, {}, 64),
         ("pixel_shuffle", None, dict(scale_factor=1), 64),
         ("pixel_shuffle", None, dict(scale_factor=2), 16),
         ("pixel_shuffle", None, dict(scale_factor=4), 4),
         ("pixel_shuffle", 4, dict(n_patches=64), 4),
         ("resampler", 1, {}, 1), ("resampler", 9, {}, 9), ("resampler", None, {}, 16),
         ("qformer", 5, {}, 5), ("qformer", 32, dict(depth=3), 32),
         ("c_abstractor", 1, {}, 1), ("c_abstractor", 4, {}, 4),
         ("c_abstractor", 16, dict(depth=2), 16), ("c_abstractor", 64, {}, 64),
         ("c_abstractor", 9, dict(depth=0), 9)]


@pytest.mark.parametrize("kind,m,kw,expected", CASES, ids=[f"{c[0]}-{c[3]}" for c in CASES])
def test_shapes_and_num_tokens(kind, m, kw, expected):
    torch.manual_seed(0)
    proj = build_projector(kind, DV, DL, num_tokens=m, **kw)
    out = proj(_feats())
    assert out.shape == (2, expected, DL)
    assert proj.num_tokens(G * G) == expected
    assert torch.isfinite(out).all()


def test_query_projectors_take_any_number_of_patches():
    for kind in ("resampler", "qformer"):
        proj = build_projector(kind, DV, DL, num_tokens=7)
        for n in (10, 64, 144):  # not even a square: queries do not need a grid
            assert proj(_feats(n)).shape == (2, 7, DL)


@pytest.mark.parametrize("kind", sorted(PROJECTORS))
def test_gradient_reaches_every_parameter(kind):
    torch.manual_seed(0)
    proj = build_projector(kind, DV, DL,
                           num_tokens=None if kind in ("linear", "mlp", "pixel_shuffle") else 4)
    x = _feats().requires_grad_(True)
    out = proj(x)
    (out * torch.randn_like(out)).sum().backward()
    missing = [n for n, p in proj.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, f"{kind}: no gradient for {missing}"
    assert x.grad.abs().sum() > 0


def test_pixel_shuffle_fold_order_and_transformers_reference():
    from transformers.models.idefics3.modeling_idefics3 import Idefics3Connector

    rows, cols = torch.meshgrid(torch.arange(G), torch.arange(G), indexing="ij")
    coords = torch.stack([rows, cols], -1).reshape(1, G * G, 2).float()
    folded = pixel_shuffle(coords, 2).reshape(1, 16, 4, 2)
    assert folded[0, 4 * 3 + 1].tolist() == [[6, 2], [6, 3], [7, 2], [7, 3]]  # output cell (3, 1)
    x = _feats(b=3)
    for s in (1, 2, 4, 8):
        assert torch.equal(pixel_shuffle(x, s), Idefics3Connector.pixel_shuffle(None, x, s))


def test_temporal_pixel_shuffle_keeps_frame_order_per_token():
    T, N = 6, 5
    frame = torch.arange(T).float().reshape(T, 1, 1).expand(T, N, 1)
    token = torch.arange(N).float().reshape(1, N, 1).expand(T, N, 1)
    x = torch.cat([frame, token], -1)                 # (T, N, 2): each token holds (frame, token)
    out = temporal_pixel_shuffle(x, 3)                # (T/3, N, 3 * 2)
    assert out.shape == (2, N, 6)
    assert out[1, 4].tolist() == [3, 4, 4, 4, 5, 4]   # frames 3, 4, 5 of token 4, in order
    batched = torch.stack([x, x + 100])               # (B, T, N, C)
    assert torch.equal(temporal_pixel_shuffle(batched, 3)[1], out + 100)
    assert torch.equal(temporal_pixel_shuffle(x, 1), x)
    assert temporal_pixel_shuffle(x, T).shape == (1, N, T * 2)  # all frames: (T, N, C) -> (N, TC)


def test_temporal_pixel_shuffle_then_linear_equals_a_tubelet_conv3d():
    # Qwen2-VL / ViViT fold time with a Conv3d of temporal depth t; on patch features (1 x 1
    # patches) that is our fold followed by one linear layer
    B, T, g, t, D = 2, 4, 3, 2, 7
    x = _feats(n=g * g, b=B * T).reshape(B, T, g * g, DV)        # (B, T, N, C)
    conv = torch.nn.Conv3d(DV, D, kernel_size=(t, 1, 1), stride=(t, 1, 1), bias=False)
    linear = torch.nn.Linear(t * DV, D, bias=False)
    with torch.no_grad():  # conv weight (D, C, t, 1, 1) -> linear weight (D, t * C), frame-major
        linear.weight.copy_(conv.weight[..., 0, 0].permute(0, 2, 1).reshape(D, t * DV))
    video = x.permute(0, 3, 1, 2).reshape(B, DV, T, g, g)       # (B, C, T, g, g)
    ref = conv(video).flatten(3).permute(0, 2, 3, 1)            # (B, T/t, N, D)
    torch.testing.assert_close(linear(temporal_pixel_shuffle(x, t)), ref)


@pytest.mark.parametrize("t", [3, 0, -2, 2.0])
def test_temporal_pixel_shuffle_refuses_a_factor_that_does_not_divide_the_frames(t):
    with pytest.raises(ValueError, match="does not divide the 4 frames"):
        temporal_pixel_shuffle(torch.zeros(4, G * G, DV), t)
    with pytest.raises(ValueError, match=r"\(\.\.\., T, N, C\)"):
        temporal_pixel_shuffle(torch.zeros(G * G, DV), 2)


def test_mlp_projector_equals_transformers_llava_projector():
    from transformers import LlamaConfig, LlavaConfig, SiglipVisionConfig
    from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

    cfg = LlavaConfig(vision_config=SiglipVisionConfig(hidden_size=DV, intermediate_size=32,
                                                       num_hidden_layers=1, num_attention_heads=4),
                      text_config=LlamaConfig(hidden_size=DL, intermediate_size=48,
                                              num_hidden_layers=1, num_attention_heads=4,
                                              vocab_size=64),
                      projector_hidden_act="gelu", vision_feature_layer=-1)
    ref = LlavaMultiModalProjector(cfg)
    ours = MLPProjector(DV, DL)
    ours.load_state_dict(ref.state_dict())  # same names: linear_1, linear_2
    x = _feats()
    torch.testing.assert_close(ours(x), ref(x))


def test_linear_mlp_pixel_shuffle_are_local():
    torch.manual_seed(0)
    x = _feats()
    for proj in (LinearProjector(DV, DL), MLPProjector(DV, DL)):
        for p in (0, 27, 63):
            assert _changed_tokens(proj, x, p) == {p}
    ps = PixelShuffleProjector(DV, DL, scale_factor=2)
    for r, c in [(0, 0), (3, 4), (7, 7), (5, 2)]:
        assert _changed_tokens(ps, x, r * G + c) == {(r // 2) * 4 + c // 2}


def _cabstractor_reach(r, c, depth, side):
    """Output cells a perturbation at patch (r, c) can reach: `depth` 3x3 convs before pooling
    (a ring of patches each), the pooling windows, `depth` 3x3 convs after
    (a ring of cells each)."""
    cells = set()
    for rr in range(max(0, r - depth), min(G, r + depth + 1)):
        for cc in range(max(0, c - depth), min(G, c + depth + 1)):
            # adaptive pooling window of cell i: [floor(iG/s), ceil((i+1)G/s))
            for i in range(side):
                for j in range(side):
                    if (i * G // side <= rr < math.ceil((i + 1) * G / side)
                            and j * G // side <= cc < math.ceil((j + 1) * G / side)):
                        cells.add((i, j))
    reach = set()
    for i, j in cells:
        for di in range(-depth, depth + 1):
            for dj in range(-depth, depth + 1):
                if 0 <= i + di < side and 0 <= j + dj < side:
                    reach.add((i + di) * side + j + dj)
    return reach


@pytest.mark.parametrize("depth,m", [(0, 16), (1, 16), (1, 4), (0, 9), (1, 9)])
def test_c_abstractor_is_local(depth, m):
    """A perturbed patch changes only the output cells within the conv/pooling receptive field;
    with depth 0 (pooling only) exactly the cell whose window holds it."""
    torch.manual_seed(0)
    proj = CAbstractor(DV, DL, num_tokens=m, depth=depth)
    side, x = math.isqrt(m), _feats()
    for r, c in [(0, 0), (7, 7), (2, 5), (4, 3)]:
        changed = _changed_tokens(proj, x, r * G + c)
        reach = _cabstractor_reach(r, c, depth, side)
        assert changed <= reach, (r, c, changed, reach)
        own = {i * side + j for i in range(side) for j in range(side)
               if i * G // side <= r < math.ceil((i + 1) * G / side)
               and j * G // side <= c < math.ceil((j + 1) * G / side)}
        assert own <= changed  # its own pooling cell(s) do change
        if depth == 0:
            assert changed == own
    if (depth, m) == (1, 16):  # a corner's perturbation never reaches the far corner's tokens
        assert _changed_tokens(proj, x, 0) == {0, 1, 4, 5}
        assert 15 not in _changed_tokens(proj, x, 0)


def test_adaptive_pool_tokens_averages_blocks():
    x = _feats()
    pooled = adaptive_pool_tokens(x, 16)
    grid = x.reshape(2, G, G, DV)
    torch.testing.assert_close(pooled[:, 4 * 1 + 2], grid[:, 2:4, 4:6].mean(dim=(1, 2)))
    pooled9 = adaptive_pool_tokens(x, 9)  # overlapping windows [0, 3), [2, 6), [5, 8)
    torch.testing.assert_close(pooled9[:, 4], grid[:, 2:6, 2:6].mean(dim=(1, 2)))


@pytest.mark.parametrize("kind", ["resampler", "qformer"])
def test_query_projectors_are_not_local(kind):
    """Every output token changes when any single input patch changes."""
    torch.manual_seed(0)
    proj = build_projector(kind, DV, DL, num_tokens=6)
    x = _feats(b=1)
    x2 = x.repeat(G * G, 1, 1)  # sample p: patch p perturbed (in a random direction)
    idx = torch.arange(G * G)
    x2[idx, idx] += torch.randn(G * G, DV, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (proj(x2) - proj(x)).abs().amax(-1)  # (patches, M)
    assert (diff > 0).all(), (diff == 0).nonzero().tolist()


def test_resampler_attention_keys_are_features_and_latents():
    torch.manual_seed(0)
    res = PerceiverResampler(DV, DL, num_latents=5, depth=3)
    out, attns = res(_feats(), return_attention=True)
    torch.testing.assert_close(out, res(_feats()))
    assert len(attns) == 3 and attns[0].shape == (2, 4, 5, G * G + 5)
    torch.testing.assert_close(attns[0].sum(-1), torch.ones(2, 4, 5))
    qf = QFormer(DV, DL, num_queries=5, depth=4)
    _, cross = qf(_feats(), return_attention=True)
    # cross-attention every other block
    assert len(cross) == 2 and cross[0].shape == (2, 4, 5, G * G)


def test_attention_manual_equals_sdpa():
    torch.manual_seed(0)
    attn = MultiHeadAttention(16, 4, kv_dim=12)
    q, ctx = torch.randn(2, 5, 16), torch.randn(2, 9, 12)
    out, w = attn(q, ctx, return_attention=True)
    torch.testing.assert_close(out, attn(q, ctx))
    assert w.shape == (2, 4, 5, 9)


def test_projections_are_plain_linear_layers_and_peft_wraps_them():
    from peft import LoraConfig, inject_adapter_in_model

    for kind in ("linear", "mlp", "pixel_shuffle", "resampler", "qformer"):
        proj = build_projector(kind, DV, DL,
                               num_tokens=None if kind in ("linear", "mlp", "pixel_shuffle") else 4)
        for name, mod in proj.named_modules():
            for _, p in mod.named_parameters(recurse=False):
                if p.ndim == 2 and name:  # every weight matrix belongs to an nn.Linear
                    assert isinstance(mod, torch.nn.Linear), (kind, name)
    res = build_projector("resampler", DV, DL, num_tokens=4)
    x = _feats()
    before = res(x)
    res = inject_adapter_in_model(LoraConfig(r=2, target_modules=["q_proj", "v_proj", "proj"]), res)
    assert any("lora_A" in n for n, _ in res.named_parameters())
    torch.testing.assert_close(res(x), before)  # LoRA starts at zero


def test_bad_configurations_raise_clear_errors():
    with pytest.raises(ValueError, match="not a square number"):
        CAbstractor(DV, DL, num_tokens=12)
    with pytest.raises(ValueError, match="cannot make M=144"):
        CAbstractor(DV, DL, num_tokens=144)(_feats())
    with pytest.raises(ValueError, match="does not divide the 8x8"):
        PixelShuffleProjector(DV, DL, scale_factor=3)(_feats())
    with pytest.raises(ValueError, match="does not divide the 8x8"):
        PixelShuffleProjector(DV, DL, scale_factor=3).num_tokens(64)
    for proj in (PixelShuffleProjector(DV, DL), CAbstractor(DV, DL, num_tokens=4)):
        with pytest.raises(ValueError, match="do not fill a square grid"):
            proj(_feats(65))  # a CLS token too many
    with pytest.raises(ValueError, match="do not fill a square grid"):
        grid_side(10)
    with pytest.raises(ValueError, match="width 16 but"):
        LinearProjector(32, DL)(_feats())
    with pytest.raises(ValueError, match="batch, tokens, d_vision"):
        MLPProjector(DV, DL)(torch.randn(64, DV))
    with pytest.raises(ValueError, match="unknown projector"):
        build_projector("conv", DV, DL)
    with pytest.raises(ValueError, match="keeps all N tokens"):
        build_projector("mlp", DV, DL, num_tokens=16)
    with pytest.raises(ValueError, match="keeps all"):
        build_projector("linear", DV, DL, num_tokens=16, n_patches=64)
    with pytest.raises(ValueError, match="pass scale_factor"):
        build_projector("pixel_shuffle", DV, DL, num_tokens=16)
    with pytest.raises(ValueError, match="cannot make 12 tokens"):
        build_projector("pixel_shuffle", DV, DL, num_tokens=12, n_patches=64)
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        PerceiverResampler(18, DL, num_heads=4)


def test_factory_and_config_round_trip():
    for kind in PROJECTORS:
        proj = build_projector(kind, DV, DL, n_patches=64,
                               **({} if kind != "qformer" else dict(depth=3)))
        assert isinstance(proj, PROJECTORS[kind]) and proj.kind == kind
        again = ProjectorConfig(**proj.config.to_dict()).build()
        assert type(again) is type(proj) and again.num_tokens(64) == proj.num_tokens(64)
        assert (sum(p.numel() for p in again.parameters())
                == sum(p.numel() for p in proj.parameters()))
    assert build_projector("pixel_shuffle", DV, DL, num_tokens=16, n_patches=64).scale_factor == 2
    assert build_projector("c_abstractor", DV, DL, num_tokens=9).num_tokens(64) == 9
    assert ProjectorConfig("resampler", DV, DL, num_tokens=3).build().num_tokens(100) == 3


def test_d_abstractor_samples_at_its_reference_points():
    # M = N and one point per head at offset 0: each reference point is a patch centre, so token p
    # reads patch p exactly (bilinear weights 1, 0, 0, 0) and nothing else
    torch.manual_seed(0)
    proj = DAbstractor(DV, DL, num_tokens=G * G, num_heads=4, num_points=1)
    with torch.no_grad():
        proj.offsets.bias.zero_()
    x = _feats()
    q = proj.queries + x                                       # pooled over a one-patch cell = x
    expected = proj.proj(proj.norm(q + proj.out(proj.value(x))))
    assert torch.allclose(proj(x), expected, atol=1e-5)


def test_d_abstractor_is_local_and_its_offsets_move_what_it_reads():
    torch.manual_seed(0)
    proj = DAbstractor(DV, DL, num_tokens=16)
    x = _feats(b=3)
    field = receptive_field(proj, x, 0)                        # token 0: the top-left cell
    assert field[:2, :2].min() > 0                             # its own cell (pooled query)
    assert (field[4:, :] == 0).all() and (field[:, 4:] == 0).all()  # nothing far away
    x2 = x.clone()
    x2[:, G * G - 1] += 5.0                                    # the bottom-right patch
    assert torch.equal(proj(x2)[:, 0], proj(x)[:, 0])
    with torch.no_grad():                                      # every sample to the far corner
        proj.offsets.bias.copy_(torch.tensor([6.0, 6.0]).repeat(16))
    assert receptive_field(proj, x, 0)[7, 7] > 0
    with pytest.raises(ValueError, match="square"):
        DAbstractor(DV, DL, num_tokens=12)
    with pytest.raises(ValueError, match="M <= N"):
        DAbstractor(DV, DL, num_tokens=16)(_feats(n=9))
