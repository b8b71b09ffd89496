"""Chapter 08: quantization, LoRA, memory accounting, the GPU preset's code path."""

import copy

import pytest
import torch
from torch import nn

from minimllm.lm import LanguageModel, LMConfig, lm_loss
from minimllm.lora import (
    LoRALinear,
    add_lora,
    load_adapters,
    merge_lora,
    prepare_stage2,
    save_adapters,
)
from minimllm.memory import checkpoint_layers, estimate_memory, measure_memory, memory_report
from minimllm.quant import (
    absmax_dequantize,
    absmax_quantize,
    blockwise_quantize,
    double_quantize,
    int_codebook,
    nf4_codebook,
    quantize,
)

bnb = pytest.importorskip("bitsandbytes")
CONFIG = LMConfig(vocab_size=300, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=128,
                  max_seq_len=65)


def small_lm(seed: int = 0) -> LanguageModel:
    torch.manual_seed(seed)
    return LanguageModel(CONFIG)


@pytest.mark.parametrize("bits,dim", [(8, None), (8, 1), (4, 1)])
def test_absmax_error_at_most_half_a_step(bits, dim):
    x = torch.randn(32, 48) * 3
    q, scale = absmax_quantize(x, bits, dim)
    assert q.dtype == torch.int8 and q.abs().max() <= 2 ** (bits - 1) - 1
    assert bool(((absmax_dequantize(q, scale) - x).abs() <= scale / 2 + 1e-6).all())
    assert (absmax_dequantize(q, scale) - x).abs().max() > 0  # it does round


def test_nf4_codebook_sorted_symmetric_and_equal_to_bitsandbytes():
    book = nf4_codebook()
    assert len(book) == 16 and bool((book.diff() > 0).all())
    assert book[0] == -1 and book[-1] == 1 and book[7] == 0
    # symmetric up to the extra positive value: 7 negative, 8 positive quantiles
    assert (book < 0).sum() == 7 and (book > 0).sum() == 8
    assert torch.allclose(book, bnb.functional.get_4bit_type("nf4", device="cpu"), atol=1e-4)


def test_blockwise_nf4_beats_int4_and_an_outlier_spoils_only_its_block():
    torch.manual_seed(0)
    x = torch.randn(64 * 50)
    nf4 = (blockwise_quantize(x, nf4_codebook()).dequantize() - x).abs().mean()
    int4 = (blockwise_quantize(x, int_codebook(4)).dequantize() - x).abs().mean()
    assert nf4 < int4
    y = x.clone()
    y[0] = 1000.0
    err = (blockwise_quantize(y, nf4_codebook()).dequantize() - y).abs()
    assert err[64:].mean() == pytest.approx(float((blockwise_quantize(x, nf4_codebook())
                                                   .dequantize() - x).abs()[64:].mean()))
    assert err[1:64].mean() > 10 * err[64:].mean()


def test_blockwise_keeps_shape_and_pads():
    x = torch.randn(7, 10)  # 70 values: 2 blocks of 64, the last one padded
    q = blockwise_quantize(x, nf4_codebook(), 64)
    assert q.codes.shape == (2, 64) and q.dequantize().shape == x.shape
    with pytest.raises(ValueError, match="sorted"):
        blockwise_quantize(x, nf4_codebook().flip(0))


def test_double_quantization_error_small():
    absmax = torch.rand(1000) * 0.1 + 0.01
    dq = double_quantize(absmax, 256)
    assert dq.q.dtype == torch.int8 and len(dq.scale) == 4
    assert ((dq.dequantize() - absmax).abs() / absmax).max() < 0.05


def test_quantize_swaps_linears_skips_head_and_keeps_outputs_close():
    lm = small_lm()
    ids = torch.randint(0, 300, (2, 16))
    ref = lm(ids).logits
    q = quantize(copy.deepcopy(lm), bits=4)
    assert isinstance(q.layers[0].self_attn.q_proj, bnb.nn.Linear4bit)
    assert type(q.lm_head) is nn.Linear
    four_bit = [m for m in q.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(four_bit) == 7 * CONFIG.n_layers
    assert not any(p.requires_grad for m in four_bit for p in m.parameters())
    out = q(ids).logits
    int8 = quantize(copy.deepcopy(lm), bits=8)(ids).logits
    assert 0 < (int8 - ref).abs().mean() < (out - ref).abs().mean() < 0.5 * ref.abs().mean()
    report = memory_report(nn.ModuleList([q.layers]))
    fp32 = memory_report(nn.ModuleList([lm.layers]))
    assert report["bytes"] < 0.30 * fp32["bytes"]
    assert report["parameters"] == fp32["parameters"]
    with pytest.raises(ValueError, match="4 or 8"):
        quantize(copy.deepcopy(lm), bits=3)


def test_lora_starts_unchanged_and_merge_equals_unmerged():
    torch.manual_seed(0)
    base = nn.Linear(16, 24)
    lora = LoRALinear(copy.deepcopy(base), rank=4, alpha=8)
    x = torch.randn(3, 5, 16)
    assert torch.equal(lora(x), base(x))
    with torch.no_grad():
        lora.lora_B.weight.normal_()
    assert not torch.allclose(lora(x), base(x))
    assert torch.allclose(lora.merged()(x), lora(x), atol=1e-5)
    lm = add_lora(small_lm(), rank=4)
    ids = torch.randint(0, 300, (2, 8))
    assert torch.equal(lm(ids).logits, small_lm()(ids).logits)
    for n, p in lm.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.05)
    before = lm(ids).logits
    merged = merge_lora(lm)
    assert not any(isinstance(m, LoRALinear) for m in merged.modules())
    assert torch.allclose(merged(ids).logits, before, atol=1e-4)


def test_add_lora_twice_does_not_wrap_adapters_and_names_targets():
    lm = add_lora(small_lm(), rank=2)
    n = sum(isinstance(m, LoRALinear) for m in lm.modules())
    assert n == 7 * CONFIG.n_layers
    with pytest.raises(ValueError, match="matches"):
        add_lora(small_lm(), targets=("nothing_here",))


def test_qlora_step_lowers_loss_and_changes_only_adapters():
    lm = add_lora(quantize(small_lm(), bits=4), rank=8, alpha=16)
    frozen = {n: p.detach().clone() for n, p in lm.named_parameters() if not p.requires_grad}
    opt = bnb.optim.AdamW8bit([p for p in lm.parameters() if p.requires_grad], lr=1e-2)
    batch = torch.randint(0, 300, (4, 33))
    losses = []
    for _ in range(20):
        loss = lm_loss(lm, batch)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < losses[0] - 0.5
    for n, p in lm.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n
    assert all("lora_" in n for n, p in lm.named_parameters() if p.requires_grad)


@pytest.mark.parametrize("bits,rank,opt,gc", [(32, 0, "adamw", False), (32, 8, "adamw", False),
                                              (4, 8, "adamw8bit", False),
                                              (8, 8, "adamw", False), (4, 8, "adamw8bit", True)])
@pytest.mark.parametrize("shape", [(4, 32), (2, 64)])
def test_memory_estimate_within_25_percent_of_measured(bits, rank, opt, gc, shape):
    lm = small_lm()
    if bits < 32:
        quantize(lm, bits=bits)
    if rank:
        add_lora(lm, rank)
    if gc:
        checkpoint_layers(lm)
    B, T = shape
    measured = measure_memory(lm, lm_loss, torch.randint(0, 300, (B, T + 1)), opt)
    estimate = estimate_memory(CONFIG, B, T, bits, rank, opt, gc)
    for part in ("weights", "gradients", "optimizer", "activations"):
        assert estimate[part] == pytest.approx(measured[part], rel=0.25), part


def test_checkpointing_keeps_gradients_equal():
    lm, ckpt = small_lm(), checkpoint_layers(small_lm())
    batch = torch.randint(0, 300, (2, 17))
    lm_loss(lm, batch).backward()
    ckpt.train()
    lm_loss(ckpt, batch).backward()
    for (n, a), (_, b) in zip(lm.named_parameters(), ckpt.named_parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5), n


def test_quantized_adapters_save_and_reload(tmp_path):
    from minimllm.mllm import MLLM, MLLMConfig
    from minimllm.vision import ViTConfig

    torch.manual_seed(0)
    config = MLLMConfig(vision=ViTConfig(image_size=32, patch_size=8, hidden_size=32,
                                         num_layers=1, num_heads=2, intermediate_size=64),
                        lm=CONFIG, projector="mlp")
    model = MLLM(config)
    model.save_pretrained(tmp_path / "base")
    prepare_stage2(model, "qlora", rank=4, alpha=8, train_embeddings=True)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {"lm.embed_tokens.weight", "lm.lm_head.weight"} <= trained
    assert not any(n.startswith("vision.") or "base_layer" in n for n in trained)
    for n, p in model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.05)
    folder = save_adapters(model, tmp_path / "adapters", {"base": str(tmp_path / "base"),
                                                          "method": "qlora", "rank": 4,
                                                          "alpha": 8, "train_embeddings": True})
    reloaded = load_adapters(folder)
    ids = torch.randint(0, 300, (1, 20))
    ids[0, 2:2 + model.num_image_tokens] = config.image_token_id
    pixels = torch.rand(1, 3, 32, 32) * 2 - 1
    assert torch.equal(model.eval()(ids, pixels).logits, reloaded(ids, pixels).logits)
    with pytest.raises(FileNotFoundError, match="save_adapters"):
        load_adapters(tmp_path / "base")


def test_gpu_preset_runs_in_quick_mode(tmp_path):
    from minimllm.finetune import gpu_job

    metrics = gpu_job(out_dir=tmp_path, quick=True)
    assert (tmp_path / "adapters" / "adapters.safetensors").exists()
    assert (tmp_path / "metrics.json").exists()
    assert metrics["estimated_bytes"]["total"] > 0 and "vqa_test" in metrics
