"""Tests of minimllm.vision: patches, the conv / linear identity, SigLIP equivalence, bad input."""

import pytest
import torch

from minimllm.vision import (
    PatchEmbed,
    VisionTransformer,
    ViTClassifier,
    ViTConfig,
    patchify,
    sincos_2d_position_embedding,
    to_pixel_values,
    to_transformers,
    unpatchify,
)

TINY = dict(image_size=16, patch_size=4, hidden_size=32, num_layers=2, num_heads=4,
            intermediate_size=64)


def _randomize(model, scale=0.05):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * scale)
    return model


def test_patchify_roundtrip_and_order():
    x = torch.randn(2, 3, 16, 24)
    p = patchify(x, 4)
    assert p.shape == (2, 4 * 6, 3 * 4 * 4)
    assert torch.equal(p[1, 7], x[1, :, 4:8, 4:8].reshape(-1))  # row 1, col 1 of a 4 x 6 grid
    assert torch.equal(unpatchify(p, 4, grid=(4, 6)), x)


def test_linear_projection_equals_strided_conv():
    torch.manual_seed(0)
    pe = PatchEmbed(3, 24, 4)
    x = torch.randn(2, 3, 16, 16)
    linear = torch.nn.Linear(3 * 4 * 4, 24)
    with torch.no_grad():
        linear.weight.copy_(pe.proj.weight.reshape(24, -1))
        linear.bias.copy_(pe.proj.bias)
    torch.testing.assert_close(pe(x), linear(patchify(x, 4)), atol=1e-5, rtol=1e-5)


def test_sincos_2d_embedding_values():
    pos = sincos_2d_position_embedding(3, 5, 8)
    assert pos.shape == (15, 8)
    # patch (row 0, col 0): sin(0) = 0, cos(0) = 1 in each half
    torch.testing.assert_close(pos[0], torch.tensor([0.0, 0, 1, 1, 0, 0, 1, 1]))
    # patch (row 2, col 3): row half uses 2, column half uses 3; omega = [1, 1/100]
    r, c = torch.tensor(2.0), torch.tensor(3.0)
    expected = torch.stack([r.sin(), (r / 100).sin(), r.cos(), (r / 100).cos(),
                            c.sin(), (c / 100).sin(), c.cos(), (c / 100).cos()])
    torch.testing.assert_close(pos[2 * 5 + 3], expected)


@pytest.mark.parametrize("pos_embed", ["learned", "sincos"])
def test_siglip_equivalence(pos_embed):
    torch.manual_seed(0)
    model = _randomize(VisionTransformer(ViTConfig(**TINY, pos_embed=pos_embed))).eval()
    hf = to_transformers(model)
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        ours = model(x).last_hidden_state
        theirs = hf(pixel_values=x).last_hidden_state
    assert type(hf).__name__ == "SiglipVisionModel"
    assert ((ours - theirs).norm() / theirs.norm()) < 1e-5


def test_outputs_attention_and_bidirectionality():
    torch.manual_seed(0)
    model = _randomize(VisionTransformer(ViTConfig(**TINY))).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        out = model(x, output_attentions=True)
        plain = model(x)
    assert out.last_hidden_state.shape == (2, 16, 32) and out.pooler_output.shape == (2, 32)
    torch.testing.assert_close(out.pooler_output, out.last_hidden_state.mean(1))
    torch.testing.assert_close(out.last_hidden_state, plain.last_hidden_state, atol=1e-5, rtol=1e-5)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (2, 4, 16, 16)
    x2 = x.clone()
    x2[..., 12:, 12:] += 1.0  # the last patch only
    with torch.no_grad():
        delta = (model(x2).last_hidden_state - plain.last_hidden_state).abs().amax(-1)
    assert (delta > 0).all()  # the first token sees the last patch: no causal mask


def test_gradients_reach_every_parameter():
    model = VisionTransformer(ViTConfig(**TINY))
    model(torch.randn(2, 3, 16, 16)).pooler_output.pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_bad_input_errors():
    model = VisionTransformer(ViTConfig(**TINY))
    with pytest.raises(ValueError, match="channels"):
        model(torch.randn(1, 1, 16, 16))
    with pytest.raises(ValueError, match="resize"):
        model(torch.randn(1, 3, 20, 20))
    with pytest.raises(ValueError, match="not divisible"):
        patchify(torch.randn(1, 3, 18, 18), 4)
    with pytest.raises(ValueError, match="not divisible"):
        ViTConfig(image_size=30, patch_size=8)
    with pytest.raises(ValueError, match="channels"):
        to_pixel_values(torch.rand(1, 8, 8), num_channels=3)


def test_to_pixel_values_range_and_resize():
    from PIL import Image

    img = Image.new("RGB", (40, 30), (255, 0, 0))
    x = to_pixel_values([img, img], image_size=16)
    assert x.shape == (2, 3, 16, 16)
    torch.testing.assert_close(x[:, 0], torch.ones(2, 16, 16))
    torch.testing.assert_close(x[:, 1], -torch.ones(2, 16, 16))


def test_save_load_roundtrip_and_corrupt(tmp_path):
    model = _randomize(VisionTransformer(ViTConfig(**TINY))).eval()
    model.save_pretrained(tmp_path / "enc")
    again = VisionTransformer.from_pretrained(tmp_path / "enc", device="cpu")
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(again(x).last_hidden_state, model(x).last_hidden_state)
    (tmp_path / "enc" / "model.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="corrupt"):
        VisionTransformer.from_pretrained(tmp_path / "enc")
    other = VisionTransformer(ViTConfig(**{**TINY, "hidden_size": 16}))
    other.save_pretrained(tmp_path / "other")
    (tmp_path / "other" / "config.json").write_text((tmp_path / "enc" / "config.json").read_text())
    with pytest.raises(ValueError, match="does not match"):
        VisionTransformer.from_pretrained(tmp_path / "other")
    with pytest.raises(FileNotFoundError):
        VisionTransformer.from_pretrained(tmp_path / "nowhere")


def test_an_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import minimllm.pretrained as pretrained

    model = _randomize(VisionTransformer(ViTConfig(**TINY))).eval()
    model.save_pretrained(tmp_path / "enc")

    def dies(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing the weights")

    monkeypatch.setattr(pretrained, "save_file", dies)
    with pytest.raises(KeyboardInterrupt):
        VisionTransformer(ViTConfig(**TINY)).save_pretrained(tmp_path / "enc")
    monkeypatch.undo()
    again = VisionTransformer.from_pretrained(tmp_path / "enc", device="cpu")
    assert all(torch.equal(a, b)
               for a, b in zip(again.state_dict().values(), model.state_dict().values()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc"], (
        "no half-written folder is left behind")


def test_feature_layer_runs_the_blocks_up_to_it():
    model = _randomize(VisionTransformer(ViTConfig(**TINY))).eval()  # 2 blocks
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        h = model.patch_embed(x) + model.position_embedding
        states = [h]
        for block in model.layers:
            h, _ = block(h)
            states.append(h)
        # embeddings
        torch.testing.assert_close(model(x, feature_layer=-3).last_hidden_state, states[0])
        # after block 1
        torch.testing.assert_close(model(x, feature_layer=-2).last_hidden_state, states[1])
        torch.testing.assert_close(model(x).last_hidden_state, model.post_layernorm(states[2]))
    assert [model.blocks_up_to(k) for k in (-1, -2, -3)] == [2, 1, 0]
    with pytest.raises(ValueError, match="feature_layer=-4"):
        model(x, feature_layer=-4)


def test_classifier_overfits_a_batch(one_thread):
    torch.manual_seed(0)
    clf = ViTClassifier(ViTConfig(**TINY), num_classes=4)
    x, y = torch.randn(8, 3, 16, 16), torch.arange(8) % 4
    opt = torch.optim.AdamW(clf.parameters(), lr=3e-3)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(clf(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
