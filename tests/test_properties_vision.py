"""Property-based tests (Hypothesis) of the image side of the public API: vision (pixels, patches,
the encoder) and contrastive (texts, the text tower, the losses, the sampler, zero-shot and
retrieval). The same properties as tests/test_properties.py, whose helpers this file uses: valid
input gives a result of the documented shape and range; invalid input raises ValueError /
TypeError from minimllm's own code, with a message that names the argument."""

import functools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from test_properties import call_rejects, seeds, small_tokenizer

from minimllm.contrastive import (
    ContrastiveModel,
    PairSampler,
    TextConfig,
    TextEncoder,
    class_embeddings,
    clip_loss,
    contrastive_loss,
    embed_images,
    make_pairs,
    recall_at_k,
    siglip_loss,
    tokenize,
    zero_shot_accuracy,
)
from minimllm.vision import (
    VisionTransformer,
    ViTConfig,
    patchify,
    sincos_2d_position_embedding,
    to_pixel_values,
    unpatchify,
)

S = 24  # the tiny encoder's image size: a 3 x 3 grid of 8-pixel patches
VIT = dict(image_size=S, patch_size=8, hidden_size=16, num_layers=2, num_heads=2,
           intermediate_size=32)


def generator(seed):
    return torch.Generator().manual_seed(seed)


@functools.cache
def vit():
    torch.manual_seed(0)
    return VisionTransformer(ViTConfig(**VIT)).eval()


@functools.cache
def clip_model(loss="siglip"):
    torch.manual_seed(0)
    text = TextConfig(vocab_size=len(small_tokenizer()), max_length=16, hidden_size=16,
                      num_layers=1, num_heads=2, intermediate_size=32)
    return ContrastiveModel(ViTConfig(**VIT), text, embed_dim=8, loss=loss).eval()


def pixels(b, seed, size=S):
    """Valid pixel values (b, 3, size, size) in [-1, 1]."""
    return torch.rand(b, 3, size, size, generator=generator(seed)) * 2 - 1


def unit(n, e, seed):
    return F.normalize(torch.randn(n, e, generator=generator(seed)), dim=-1)


# --- images -> pixel values ---------------------------------------------------------------

def one_image(kind, h, w, channels, seed):
    """The same 8-bit picture as each of the accepted kinds; returns (image, uint8 (H, W, C))."""
    rng = np.random.default_rng(seed)
    u8 = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    hw = u8[..., 0] if channels == 1 else u8
    if kind == "uint8 array":
        return hw, u8
    if kind == "int32 array":
        return hw.astype(np.int32), u8
    if kind == "float array":
        return hw.astype(np.float64) / 255, u8
    if kind == "uint8 tensor":
        return torch.from_numpy(u8).permute(2, 0, 1).contiguous(), u8
    if kind == "int64 tensor":
        return torch.from_numpy(u8).permute(2, 0, 1).long(), u8
    if kind == "float tensor":
        return torch.from_numpy(u8).permute(2, 0, 1).float() / 255, u8
    return Image.fromarray(hw, "L" if channels == 1 else "RGB"), u8


KINDS = ["uint8 array", "int32 array", "float array", "uint8 tensor", "int64 tensor",
         "float tensor", "PIL"]


@given(kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=3),
       h=st.integers(1, 12), w=st.integers(1, 12), channels=st.sampled_from([1, 3]), seed=seeds)
def test_every_kind_of_8bit_image_gives_the_same_pixel_values(kinds, h, w, channels, seed):
    images, u8 = zip(*(one_image(k, h, w, channels, seed) for k in kinds))
    out = to_pixel_values(list(images), num_channels=channels)
    assert out.shape == (len(kinds), channels, h, w) and out.dtype == torch.float32
    want = torch.from_numpy(u8[0]).permute(2, 0, 1).float() / 255 * 2 - 1
    for x in out:  # every kind, one scaling: integers are 8-bit whatever their type
        torch.testing.assert_close(x, want, atol=1e-6, rtol=0)


@given(b=st.integers(1, 3), h=st.integers(1, 12), w=st.integers(1, 12),
       size=st.integers(1, 16), seed=seeds)
def test_image_size_resizes_into_range(b, h, w, size, seed):
    images = [torch.rand(3, h, w, generator=generator(seed + i)) for i in range(b)]
    out = to_pixel_values(images, image_size=size)
    assert out.shape == (b, 3, size, size)
    assert torch.isfinite(out).all() and out.min() >= -1 - 1e-5 and out.max() <= 1 + 1e-5


def _bad_images(seed):
    """(what, images, settings, words the message must hold)."""
    rng = np.random.default_rng(seed)
    ok = rng.random((8, 8, 3), dtype=np.float32)
    nan = ok.copy()
    nan[rng.integers(8), rng.integers(8), rng.integers(3)] = rng.choice([np.nan, np.inf, -np.inf])
    yield "0-255 floats", ok * 255 + 2, {}, ["[0, 1]", "255"]
    yield "already in [-1, 1]", ok * 2 - 1.5, {}, ["[-1, 1]"]
    yield "NaN or inf", nan, {}, ["NaN"]
    yield "16-bit array", (ok * 65535).astype(np.uint16), {}, ["uint16"]
    yield "ints over 255", (ok * 1000).astype(np.int32) + 256, {}, ["[0, 255]"]
    yield "negative ints", torch.full((3, 8, 8), -3), {}, ["[0, 255]"]
    yield "bool pixels", ok > 0.5, {}, ["bool"]
    yield "complex pixels", ok.astype(np.complex64), {}, ["complex"]
    yield "bool tensor", torch.from_numpy(ok > 0.5).permute(2, 0, 1), {}, ["bool"]
    yield "empty image", np.zeros((0, 5, 3), np.uint8), {}, ["empty"]
    yield "channel-last tensor", torch.from_numpy(ok), {}, ["channel-last", "permute"]
    yield "RGBA array", rng.integers(0, 255, (8, 8, 4), dtype=np.uint8), {}, ["channels"]
    yield "grey for RGB", ok[..., 0:1], {}, ["channels"]
    yield "two sizes", [ok, ok[:4]], {}, ["image_size"]
    yield "no images", [], {}, ["no images"]
    yield "a file name", "scene.png", {}, ["PIL.Image.open"]
    yield "5-d tensor", torch.rand(1, 1, 3, 8, 8), {}, ["(C, H, W)"]
    for size in (0, -8, 2.5, True, "32"):
        yield f"image_size={size!r}", ok, {"image_size": size}, ["image_size"]
    for n in (0, 2.0, "3"):
        yield f"num_channels={n!r}", ok, {"num_channels": n}, ["num_channels"]


N_BAD_IMAGES = len(list(_bad_images(0)))


@pytest.mark.parametrize("k", range(N_BAD_IMAGES))
@given(seed=seeds)
def test_bad_images_are_refused_with_what_to_do(k, seed):
    _, images, settings, words = list(_bad_images(seed))[k]
    call_rejects(lambda: to_pixel_values(images, **settings), words)


# --- patches ------------------------------------------------------------------------------

@given(b=st.integers(1, 3), c=st.integers(1, 4), gh=st.integers(1, 4), gw=st.integers(1, 4),
       p=st.integers(1, 5), seed=seeds)
def test_patchify_then_unpatchify_is_the_identity(b, c, gh, gw, p, seed):
    x = torch.randn(b, c, gh * p, gw * p, generator=generator(seed))
    patches = patchify(x, p)
    assert patches.shape == (b, gh * gw, c * p * p)
    assert torch.equal(unpatchify(patches, p, grid=(gh, gw), num_channels=c), x)


@given(p=st.sampled_from([0, -4, 2.0, True, "4", None]))
def test_bad_patch_sizes_are_refused_by_name(p):
    x = torch.zeros(1, 3, 8, 8)
    call_rejects(lambda: patchify(x, p), ["patch_size"])
    call_rejects(lambda: unpatchify(patchify(x, 4), p), ["patch_size"])


@given(case=st.sampled_from([
    (lambda: patchify(torch.zeros(3, 8, 8), 4), ["images", "(B, C, H, W)"]),
    (lambda: patchify([[0.0]], 4), ["images"]),
    (lambda: patchify(torch.zeros(1, 3, 8, 6), 4), ["divisible", "patch size 4"]),
    (lambda: unpatchify(torch.zeros(4, 48), 4), ["patches"]),
    (lambda: unpatchify(torch.zeros(1, 4, 48), 4, num_channels=1), ["patch_size", "num_channels"]),
    (lambda: unpatchify(torch.zeros(1, 4, 48), 2), ["patch_size"]),
    (lambda: unpatchify(torch.zeros(1, 6, 48), 4), ["grid"]),
    (lambda: unpatchify(torch.zeros(1, 4, 48), 4, grid=(-2, -2)), ["grid"]),
]))
def test_misshaped_patches_are_refused(case):
    fn, words = case
    call_rejects(fn, words)


# --- the vision encoder -------------------------------------------------------------------

@given(b=st.integers(1, 3), layer=st.integers(-3, -1), attentions=st.booleans(), seed=seeds)
def test_the_encoder_maps_valid_pixels_to_finite_tokens(b, layer, attentions, seed):
    model = vit()
    with torch.no_grad():
        out = model(pixels(b, seed), output_attentions=attentions, feature_layer=layer)
    n, d = model.config.num_patches, model.config.hidden_size
    assert out.last_hidden_state.shape == (b, n, d) and out.pooler_output.shape == (b, d)
    assert torch.isfinite(out.last_hidden_state).all()
    torch.testing.assert_close(out.pooler_output, out.last_hidden_state.mean(1))
    if attentions:
        assert len(out.attentions) == model.blocks_up_to(layer)
        for att in out.attentions:  # (B, heads, N, N), each row a distribution
            torch.testing.assert_close(att.sum(-1), torch.ones(b, VIT["num_heads"], n))
    else:
        assert out.attentions is None


def _bad_pixel_values(seed):
    x = pixels(2, seed)
    nan = x.clone()
    nan.view(-1)[seed % nan.numel()] = [float("nan"), float("inf"), -float("inf")][seed % 3]
    yield (x + 1) * 127.5, ["0-255", "to_pixel_values"]            # 0-255 floats
    yield ((x + 1) * 127.5).to(torch.uint8), ["floats", "uint8"]     # uint8 images
    yield ((x + 1) * 127.5).long(), ["floats", "int64"]
    yield x > 0, ["floats", "bool"]
    yield nan, ["NaN"]
    yield x.numpy(), ["tensor", "to_pixel_values"]
    yield x.tolist(), ["tensor"]
    yield x[0], ["batch", "x[None]"]                                 # no batch dimension
    yield x[None], ["batch"]
    yield x[:0], ["no pixels"]                                       # an empty batch
    yield x[:, :1], ["channels"]
    yield pixels(1, seed, size=16), ["16x16", f"image_size={S}"]
    yield pixels(1, seed, size=20), ["divisible", "patch size 8"]


@pytest.mark.parametrize("k", range(len(list(_bad_pixel_values(0)))))
@given(seed=st.integers(0, 10**6))
def test_the_encoder_refuses_bad_pixel_values(k, seed):
    bad, words = list(_bad_pixel_values(seed))[k]
    call_rejects(lambda: vit()(bad), words)


@given(layer=st.integers(-10, 5).filter(lambda v: not -3 <= v <= -1)
       | st.sampled_from([-1.0, -2.0, True, "last", None]))
def test_feature_layer_must_name_a_block(layer):
    call_rejects(lambda: vit()(pixels(1, 0), feature_layer=layer), ["feature_layer"])


@given(name=st.sampled_from(["image_size", "patch_size", "num_channels", "hidden_size",
                             "num_layers", "num_heads", "intermediate_size"]),
       value=st.sampled_from([0, -1, 2.5, True, "8", None]))
def test_bad_vit_settings_are_refused_by_name(name, value):
    call_rejects(lambda: ViTConfig(**{**VIT, name: value}), [name])


@given(case=st.sampled_from([
    ({"patch_size": 5}, ["divisible", "patch_size"]), ({"num_heads": 3}, ["num_heads"]),
    ({"pos_embed": "rope"}, ["pos_embed"]), ({"layer_norm_eps": -1e-6}, ["layer_norm_eps"]),
    ({"layer_norm_eps": float("nan")}, ["layer_norm_eps"]),
]))
def test_inconsistent_vit_settings_are_refused(case):
    settings, words = case
    call_rejects(lambda: ViTConfig(**{**VIT, **settings}), words)


@given(gh=st.integers(1, 6), gw=st.integers(1, 6), dim=st.integers(1, 8).map(lambda k: 4 * k))
def test_sincos_embeddings_are_bounded_and_distinct(gh, gw, dim):
    pos = sincos_2d_position_embedding(gh, gw, dim)
    assert pos.shape == (gh * gw, dim) and pos.abs().max() <= 1 + 1e-6
    assert len(torch.unique(pos, dim=0)) == gh * gw  # every patch its own code


@given(case=st.sampled_from([(0, 2, 8, "grid_h"), (2, -1, 8, "grid_w"), (2, 2, 6, "dim"),
                             (2, 2, 0, "dim"), (2.5, 2, 8, "grid_h")]))
def test_bad_sincos_settings_are_refused_by_name(case):
    *args, word = case
    call_rejects(lambda: sincos_2d_position_embedding(*args), [word])


# --- texts and the text tower -------------------------------------------------------------

texts = st.lists(st.text(alphabet="abcxyz .?", min_size=0, max_size=10), min_size=1, max_size=5)


@given(batch=texts)
def test_tokenize_right_pads_and_ends_every_text_with_eos(batch):
    tok = small_tokenizer()
    out = tokenize(tok, batch, max_length=64)
    ids, mask = out["input_ids"], out["attention_mask"]
    assert ids.shape == mask.shape and ids.shape[0] == len(batch) and ids.dtype == torch.long
    assert set(mask.unique().tolist()) <= {0, 1}
    assert not (mask[:, 1:] > mask[:, :-1]).any()                  # right padding
    last = mask.sum(1) - 1
    assert (ids[torch.arange(len(batch)), last] == tok.eos_token_id).all()
    assert (ids[mask == 0] == tok.pad_token_id).all()


@given(case=st.sampled_from([
    ([], {}, ["texts", "empty"]), ([1, 2], {}, ["texts", "strings"]),
    (["a", None], {}, ["texts", "strings"]), (None, {}, ["texts"]), (7, {}, ["texts"]),
    (["a"], {"max_length": 0}, ["max_length"]), (["a"], {"max_length": 2.5}, ["max_length"]),
    (["a b c x y z " * 8], {"max_length": 8}, ["max_length", "shorten"]),
]))
def test_tokenize_refuses_bad_texts(case):
    batch, settings, words = case
    call_rejects(lambda: tokenize(small_tokenizer(), batch, **settings), words)


def right_padded(seed, b, t):
    """input_ids (b, t) and a right-padded mask with 1..t real tokens per row."""
    g = generator(seed)
    ids = torch.randint(0, len(small_tokenizer()), (b, t), generator=g)
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    return ids, (torch.arange(t)[None] < lengths[:, None]).long()


@given(b=st.integers(1, 4), t=st.integers(1, 16), seed=seeds)
def test_the_text_tower_reads_the_last_real_token_only(b, t, seed):
    enc = clip_model().text
    ids, mask = right_padded(seed, b, t)
    with torch.no_grad():
        out = enc(ids, mask)
        noise = torch.randint_like(ids, 0, enc.config.vocab_size, generator=generator(seed + 1))
        repadded = enc(torch.where(mask.bool(), ids, noise), mask.bool())  # padding: any ids
    assert out.shape == (b, enc.config.hidden_size) and torch.isfinite(out).all()
    torch.testing.assert_close(out, repadded)


def _bad_text_inputs(seed):
    ids, mask = right_padded(seed, 3, 6)
    V = clip_model().text.config.vocab_size
    zero_row, left, holes = mask.clone(), mask.clone(), mask.clone()
    zero_row[seed % 3] = 0
    left[0] = torch.tensor([0, 0, 1, 1, 1, 1])
    holes[1] = torch.tensor([1, 0, 1, 0, 0, 0])
    negative, too_big = ids.clone(), ids.clone()
    negative[seed % 3, seed % 6] = -1 - seed % 50
    too_big[seed % 3, seed % 6] = V + seed % 50
    yield negative, mask, ["input_ids", f"[0, {V})"]
    yield too_big, mask, ["input_ids", f"[0, {V})"]
    yield ids.float(), mask, ["input_ids", "float"]
    yield ids[0], mask[0], ["input_ids", "(batch, time)"]
    yield ids[:, :0], mask[:, :0], ["input_ids", "at least one token"]
    yield ids[:0], mask[:0], ["input_ids"]
    yield ids.tolist(), mask, ["input_ids"]
    yield torch.zeros(1, 17, dtype=torch.long), torch.ones(1, 17), ["max_length"]
    yield ids, zero_row, ["attention_mask", "row of zeros"]
    yield ids, mask[:2], ["attention_mask", "shape"]
    yield ids, mask[:, :5], ["attention_mask", "shape"]
    yield ids, None, ["attention_mask"]
    yield ids, left, ["attention_mask", "right-padded"]
    yield ids, holes, ["attention_mask", "right-padded"]
    yield ids, mask * 2, ["attention_mask", "0", "1"]
    yield ids, -mask, ["attention_mask"]


@pytest.mark.parametrize("k", range(len(list(_bad_text_inputs(0)))))
@given(seed=st.integers(0, 10**6))
def test_the_text_tower_refuses_bad_ids_and_masks(k, seed):
    ids, mask, words = list(_bad_text_inputs(seed))[k]
    call_rejects(lambda: clip_model().text(ids, mask), words)


@given(name=st.sampled_from(["vocab_size", "max_length", "hidden_size", "num_layers",
                             "num_heads", "intermediate_size"]),
       value=st.sampled_from([0, -2, 1.5, True, "16"]))
def test_bad_text_settings_are_refused_by_name(name, value):
    call_rejects(lambda: TextEncoder(TextConfig(**{name: value})), [name])


# --- the losses ---------------------------------------------------------------------------

@given(b=st.integers(1, 6), e=st.integers(1, 8), scale=st.floats(0.1, 100),
       bias=st.floats(-10, 10), seed=seeds)
def test_the_losses_of_valid_pairs_are_finite_and_positive(b, e, scale, bias, seed):
    img, txt = unit(b, e, seed), unit(b, e, seed + 1)
    clip, sig = clip_loss(img, txt, scale), siglip_loss(img, txt, scale, bias)
    assert clip.ndim == 0 and torch.isfinite(clip) and clip >= 0
    assert sig.ndim == 0 and torch.isfinite(sig) and sig >= 0
    perm = torch.randperm(b, generator=generator(seed))  # relabelling the pairs changes nothing
    torch.testing.assert_close(clip_loss(img[perm], txt[perm], scale), clip)
    torch.testing.assert_close(siglip_loss(img[perm], txt[perm], scale, bias), sig)


def _bad_pairs(seed):
    a, b = unit(4, 8, seed), unit(4, 8, seed + 1)
    yield (a, b[:3], 10.0), ["image_emb", "text_emb"]            # 4 images, 3 texts
    yield (a[:2], b, 10.0), ["image_emb", "text_emb"]
    yield (a, b[:, :6], 10.0), ["image_emb", "text_emb"]         # other widths
    yield (a[:0], b[:0], 10.0), ["image_emb", "N >= 1"]          # an empty batch
    yield (a[0], b[0], 10.0), ["image_emb", "(N, E)"]
    yield (a[None], b[None], 10.0), ["image_emb", "(N, E)"]
    yield (a.long(), b.long(), 10.0), ["image_emb", "float"]
    yield (a.tolist(), b, 10.0), ["image_emb", "tensor"]
    yield (a, b, "10"), ["logit_scale"]
    yield (a, b, torch.tensor([1.0, 2.0])), ["logit_scale"]


@pytest.mark.parametrize("k", range(len(list(_bad_pairs(0)))))
@given(seed=seeds)
def test_the_losses_refuse_bad_pairs(k, seed):
    (img, txt, scale), words = list(_bad_pairs(seed))[k]
    call_rejects(lambda: clip_loss(img, txt, scale), words)
    call_rejects(lambda: siglip_loss(img, txt, scale, -10.0), words)


@given(bias=st.sampled_from(["-10", None, torch.zeros(3)]))
def test_siglip_refuses_a_bad_bias(bias):
    call_rejects(lambda: siglip_loss(unit(2, 4, 0), unit(2, 4, 1), 10.0, bias), ["logit_bias"])


# --- the two-tower model, its sampler and its batches -------------------------------------

@given(b=st.integers(1, 3), t=st.integers(1, 16), loss=st.sampled_from(["clip", "siglip"]),
       seed=seeds)
def test_the_model_gives_a_finite_loss_on_matching_pairs(b, t, loss, seed):
    ids, mask = right_padded(seed, b, t)
    batch = {"pixel_values": pixels(b, seed), "input_ids": ids, "attention_mask": mask}
    with torch.no_grad():
        value = contrastive_loss(clip_model(loss), batch)
    assert value.ndim == 0 and torch.isfinite(value) and value >= 0


@given(n_img=st.integers(1, 4), n_txt=st.integers(1, 4), seed=seeds)
def test_the_model_refuses_unpaired_batches(n_img, n_txt, seed):
    ids, mask = right_padded(seed, n_txt, 5)
    batch = {"pixel_values": pixels(n_img, seed), "input_ids": ids, "attention_mask": mask}
    if n_img == n_txt:
        with torch.no_grad():
            assert torch.isfinite(contrastive_loss(clip_model(), batch))
    else:
        call_rejects(lambda: contrastive_loss(clip_model(), batch), ["pixel_values", "input_ids"])
    for key in batch:
        partial = {k: v for k, v in batch.items() if k != key}
        call_rejects(lambda: contrastive_loss(clip_model(), partial), [key])  # noqa: B023


@given(case=st.sampled_from([
    ({"embed_dim": 0}, ["embed_dim"]), ({"embed_dim": 2.5}, ["embed_dim"]),
    ({"loss": "softmax"}, ["loss"]), ({"vision_config": dict(VIT)}, ["vision_config"]),
    ({"text_config": {"vocab_size": 10}}, ["text_config"]),
]))
def test_bad_model_settings_are_refused_by_name(case):
    settings, words = case
    call_rejects(lambda: ContrastiveModel(**{"vision_config": ViTConfig(**VIT), **settings}),
                 words)


def pair_data(n, per_scene, seed):
    words = ["a", "b", "c", "x y", "z ."]
    caps = [[f"{words[(seed + i + j) % 5]} {words[(i * 3 + j) % 5]}" for j in range(per_scene)]
            for i in range(n)]
    return {"pixel_values": pixels(n, seed), "captions": caps}


@given(n=st.integers(1, 6), per_scene=st.integers(1, 3), data=st.data(), seed=seeds,
       step=st.integers(0, 10**6))
def test_the_sampler_draws_distinct_pairs_of_one_step(n, per_scene, data, seed, step):
    pairs = pair_data(n, per_scene, seed)
    bs = data.draw(st.integers(1, n))
    sampler = PairSampler(pairs, small_tokenizer(), bs, max_length=16, seed=seed % 1000)
    batch = sampler(step)
    assert batch["pixel_values"].shape == (bs, 3, S, S)
    assert batch["input_ids"].shape == batch["attention_mask"].shape
    assert batch["input_ids"].shape[0] == bs and batch["attention_mask"][:, -1].any()
    scenes = {tuple(x.flatten()[:4].tolist()) for x in batch["pixel_values"]}
    assert len(scenes) == bs                                         # no scene twice
    assert torch.equal(sampler(step)["input_ids"], batch["input_ids"])  # a function of the step


def _bad_pair_data(seed):
    ok = pair_data(4, 2, seed)
    yield ok, {"batch_size": 0}, ["batch_size"]
    yield ok, {"batch_size": 5}, ["batch_size", "4 scenes"]
    yield ok, {"batch_size": 2.5}, ["batch_size"]
    yield ok, {"hard_negatives": 1.5}, ["hard_negatives"]
    yield ok, {"hard_negatives": float("nan")}, ["hard_negatives"]
    yield ok, {"hard_negatives": 0.5}, ["hard_negatives", "scenes"]   # needs pairs["scenes"]
    yield {"captions": ok["captions"]}, {}, ["pixel_values"]
    yield {"pixel_values": ok["pixel_values"]}, {}, ["captions"]
    yield [ok], {}, ["dict"]
    yield {**ok, "captions": [c[0] for c in ok["captions"]]}, {}, ["captions", "list"]
    yield {**ok, "captions": [ok["captions"][0][:1]] + ok["captions"][1:]}, {}, ["captions",
                                                                               "same number"]
    yield {**ok, "captions": [[1, 2]] * 4}, {}, ["captions", "strings"]
    yield {**ok, "captions": []}, {}, ["captions"]
    yield {**ok, "pixel_values": ok["pixel_values"][:3]}, {}, ["pixel_values", "captions"]
    yield {**ok, "pixel_values": ((ok["pixel_values"] + 1) * 127).to(torch.uint8)}, {}, [
        "pixel_values", "uint8"]


@pytest.mark.parametrize("k", range(len(list(_bad_pair_data(0)))))
@given(seed=seeds)
def test_the_sampler_refuses_bad_pairs_and_settings(k, seed):
    pairs, settings, words = list(_bad_pair_data(seed))[k]
    settings = {"batch_size": 2, **settings}
    call_rejects(lambda: PairSampler(pairs, small_tokenizer(), max_length=16, **settings), words)


@given(n=st.sampled_from([0, -1, 1.5, True, "2"]), per_scene=st.sampled_from([0, 2.0]))
def test_make_pairs_refuses_bad_counts_by_name(n, per_scene):
    call_rejects(lambda: make_pairs(n), ["n_scenes"])
    call_rejects(lambda: make_pairs(1, captions_per_scene=per_scene), ["captions_per_scene"])


@given(n=st.integers(1, 2), per_scene=st.integers(1, 2), size=st.integers(24, 40), seed=seeds)
def test_make_pairs_gives_what_it_says(n, per_scene, size, seed):
    pairs = make_pairs(n, seed=seed, captions_per_scene=per_scene, image_size=size)
    assert pairs["pixel_values"].shape == (n, 3, size, size)
    assert pairs["pixel_values"].min() >= -1 and pairs["pixel_values"].max() <= 1
    assert len(pairs["scenes"]) == n and all(len(c) == per_scene for c in pairs["captions"])


# --- zero-shot classification and retrieval -----------------------------------------------

@given(classes=st.lists(st.sampled_from(["a", "b", "c", "x", "y z"]), min_size=1, max_size=4,
                        unique=True),
       templates=st.lists(st.sampled_from(["{}", "a {} .", "x {} y", "{} ?"]), min_size=1,
                          max_size=3, unique=True),
       n=st.integers(1, 5), seed=seeds)
def test_zero_shot_accuracy_is_a_fraction(classes, templates, n, seed):
    model = clip_model()
    cls = class_embeddings(model, small_tokenizer(), classes, templates)
    img = embed_images(model, pixels(n, seed), batch_size=2)
    assert cls.shape == (len(classes), 8) and img.shape == (n, 8)
    torch.testing.assert_close(cls.norm(dim=-1), torch.ones(len(classes)))
    torch.testing.assert_close(img.norm(dim=-1), torch.ones(n))
    labels = torch.randint(0, len(classes), (n,), generator=generator(seed))
    acc = zero_shot_accuracy(img, labels, cls)
    assert 0 <= acc <= 1 and math.isclose(acc * n, round(acc * n), abs_tol=1e-6)
    assert zero_shot_accuracy(img, (img @ cls.T).argmax(-1), cls) == 1.0


def _bad_zero_shot(seed):
    img, cls = unit(4, 8, seed), unit(3, 8, seed + 1)
    labels = torch.tensor([0, 1, 2, seed % 3])
    nan = img.clone()
    nan[seed % 4, seed % 8] = float("nan")
    yield (img, labels[:3], cls), ["labels", "(4,)"]
    yield (img, labels[:1], cls), ["labels"]                # would broadcast
    yield (img, labels[:, None], cls), ["labels"]
    yield (img, labels.float(), cls), ["labels", "integer"]
    yield (img, labels.tolist(), cls), ["labels"]
    yield (img, labels + 3, cls), ["labels", "[0, 3)"]
    yield (img, labels - 5, cls), ["labels", "[0, 3)"]
    yield (img, labels, cls[:, :5]), ["class_emb", "width"]
    yield (img, labels, cls[:0]), ["class_emb"]
    yield (img[:0], labels[:0], cls), ["image_emb"]
    yield (nan, labels, cls), ["image_emb", "NaN"]
    yield (img.long(), labels, cls), ["image_emb", "float"]


@pytest.mark.parametrize("k", range(len(list(_bad_zero_shot(0)))))
@given(seed=seeds)
def test_zero_shot_accuracy_refuses_bad_input(k, seed):
    args, words = list(_bad_zero_shot(seed))[k]
    call_rejects(lambda: zero_shot_accuracy(*args), words)


@given(case=st.sampled_from([
    ("red", ["a {}"], ["classnames", "list"]), ([], ["a {}"], ["classnames", "empty"]),
    ([1, 2], ["a {}"], ["classnames", "strings"]), (["a"], [], ["templates", "empty"]),
    (["a"], ["no slot"], ["templates", "{}"]), (["a"], ["{} and {}"], ["templates"]),
    (["a"], ["{} {x}"], ["templates"]), (["a"], [5], ["templates", "strings"]),
]))
def test_class_embeddings_refuse_bad_names_and_templates(case):
    classes, templates, words = case
    call_rejects(lambda: class_embeddings(clip_model(), small_tokenizer(), classes, templates),
                 words)


@given(case=st.sampled_from([
    (lambda x: x[:0], {}, ["pixel_values", "no pixels"]),
    (lambda x: ((x + 1) * 127).to(torch.uint8), {}, ["pixel_values", "uint8"]),
    (lambda x: list(x), {}, ["pixel_values", "tensor"]),
    (lambda x: x, {"batch_size": 0}, ["batch_size"]),
    (lambda x: x, {"batch_size": 1.5}, ["batch_size"]),
]))
def test_embed_images_refuses_bad_input(case):
    make, settings, words = case
    call_rejects(lambda: embed_images(clip_model(), make(pixels(2, 0)), **settings), words)


@given(n=st.integers(1, 8), e=st.integers(1, 8),
       ks=st.lists(st.integers(1, 10), min_size=1, max_size=4, unique=True), seed=seeds)
def test_recall_at_k_is_a_fraction_that_grows_with_k(n, e, ks, seed):
    img, txt = unit(n, e, seed), unit(n, e, seed + 1)
    out = recall_at_k(img, txt, ks)
    assert len(out) == 2 * len(ks) and all(0 <= v <= 1 for v in out.values())
    for way in ("image->text", "text->image"):
        values = [out[f"{way} R@{k}"] for k in sorted(ks)]
        assert values == sorted(values)                                  # grows with k
        assert all(v == 1.0 for k, v in zip(sorted(ks), values) if k >= n)  # all N: found
    assert recall_at_k(img, img, [1])["image->text R@1"] == 1.0    # a tie is no defeat


@given(case=st.sampled_from([
    (lambda a: (a, a[:3]), {}, ["image_emb", "text_emb"]),
    (lambda a: (a[:3], a), {}, ["image_emb", "text_emb"]),
    (lambda a: (a, a[:, :4]), {}, ["image_emb", "text_emb"]),
    (lambda a: (a[:0], a[:0]), {}, ["image_emb"]),
    (lambda a: (a * float("nan"), a), {}, ["image_emb", "NaN"]),
    (lambda a: (a, a), {"ks": [0]}, ["ks"]),
    (lambda a: (a, a), {"ks": [1.5]}, ["ks"]),
]))
def test_recall_at_k_refuses_bad_input(case):
    make, settings, words = case
    call_rejects(lambda: recall_at_k(*make(unit(4, 8, 0)), **settings), words)


def test_one_k_is_fine_where_ks_go():
    a = unit(3, 4, 0)
    assert recall_at_k(a, a, 2) == recall_at_k(a, a, [2])
    call_rejects(lambda: recall_at_k(a, a, "5"), ["ks"])
