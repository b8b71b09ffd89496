"""Property-based tests of Method B's media locations (chapter 06's xattn.py): for any placement
of images in a batch, each position reads the most recent image at or before it, and markers
that do not match the images are refused by name."""
import functools

import torch
from hypothesis import given
from hypothesis import strategies as st
from test_properties import call_rejects

from minimllm.lm import LMConfig
from minimllm.tokenizer import IMAGE_TOKEN_ID
from minimllm.vision import ViTConfig
from minimllm.xattn import CrossAttentionMLLM, XAttnConfig

M, T = 4, 12  # image states per image, sequence length


@functools.cache
def model(k: int) -> CrossAttentionMLLM:
    """A tiny Method B model with k sequence tokens per image (1, or NVLM-H's thumbnails)."""
    torch.manual_seed(0)
    vit = ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_layers=1, num_heads=2,
                    intermediate_size=32)
    lm = LMConfig(vocab_size=300, dim=32, n_layers=4, n_heads=4, n_kv_heads=2, ffn_dim=64,
                  max_seq_len=64)
    return CrossAttentionMLLM(XAttnConfig(vision=vit, lm=lm, num_image_tokens=M,
                                          num_thumbnail_tokens=0 if k == 1 else k))


@st.composite
def batches(draw):
    """input_ids (B, T) with whole runs of k markers, and the start of every image per row."""
    k = draw(st.sampled_from([1, 4]))  # NVLM-H thumbnails are square grids
    rows, starts = [], []
    for _ in range(draw(st.integers(1, 3))):
        ids = draw(st.lists(st.integers(10, 299), min_size=T, max_size=T))
        slots = draw(st.lists(st.integers(0, T // k - 1), max_size=3, unique=True))
        row_starts = sorted(s * k for s in slots)  # runs on a grid of k never overlap
        for s in row_starts:
            ids[s:s + k] = [IMAGE_TOKEN_ID] * k
        rows.append(ids)
        starts.append(row_starts)
    return k, torch.tensor(rows), starts


@given(batches())
def test_each_position_reads_its_most_recent_image(batch):
    k, ids, starts = batch
    n_images = sum(len(s) for s in starts)
    context = model(k).image_context(ids, torch.randn(n_images, M, 32))
    for row, row_starts in enumerate(starts):
        for t in range(T):
            want = sum(s <= t for s in row_starts) - 1  # -1: before the row's first image
            assert context.image_index[row, t] == want
    mask, has_image = context.masks(0, T)
    I = max(max((len(s) for s in starts), default=0), 1)
    assert mask.shape == (len(starts), 1, T, I * M) and has_image.shape == (len(starts), T, 1)
    assert torch.equal(has_image[..., 0].bool(), context.image_index >= 0)
    reads = mask[:, 0].reshape(len(starts), T, I, M).any(-1)  # (B, T, I): images a position reads
    seen = has_image[..., 0].bool()
    assert torch.equal(reads[seen].sum(-1), torch.ones(int(seen.sum()), dtype=torch.long))


@given(batches(), st.sampled_from([-1, 1]))
def test_markers_that_do_not_match_the_images_are_refused(batch, extra):
    k, ids, starts = batch
    n_images = sum(len(s) for s in starts) + extra
    if n_images < 0:
        return
    fusion = model(k)
    call_rejects(lambda: fusion.image_context(ids, torch.randn(n_images, M, 32)), ("markers",))
