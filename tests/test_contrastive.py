"""Tests of minimllm.contrastive: the CLIP and SigLIP losses, the towers, zero-shot, checkpoints."""

import math

import pytest
import torch
import torch.nn.functional as F

from minimllm.contrastive import (
    ContrastiveModel,
    PairSampler,
    TextConfig,
    class_embeddings,
    clip_loss,
    contrastive_loss,
    embed_images,
    load_vision_encoder,
    make_pairs,
    recall_at_k,
    siglip_loss,
    tokenize,
    train_reference,
    zero_shot_accuracy,
)
from minimllm.vision import VisionTransformer, ViTConfig

TINY_VISION = dict(image_size=32, patch_size=8, hidden_size=32, num_layers=1, num_heads=2,
                   intermediate_size=64)


@pytest.fixture(scope="module")
def tokenizer():
    from minimllm.data import text_corpus
    from minimllm.tokenizer import train_tokenizer

    return train_tokenizer(text_corpus(n_scenes=300, seed=0), vocab_size=400)


def test_losses_on_hand_computed_cases():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # CLIP, t = 1: every row and column is softmax([1, 0]) at the true pair
    assert math.isclose(clip_loss(x, x, 1.0).item(), math.log(1 + math.exp(-1)), rel_tol=1e-6)
    # SigLIP, t = 2, b = -1: diagonal logits 1, off-diagonal -1 (labels -1)
    # -> all four terms log(1 + e^-1)
    assert math.isclose(siglip_loss(x, x, 2.0, -1.0).item(), 4 * math.log(1 + math.exp(-1)) / 2,
                        rel_tol=1e-6)
    # orthogonal mismatch: SigLIP with b = 0 gives log 2 for every pair
    y = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    assert math.isclose(siglip_loss(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), y, 1.0, 0.0).item(),
                        4 * math.log(2) / 2, rel_tol=1e-6)


def test_losses_match_naive_loops_and_are_symmetric():
    torch.manual_seed(0)
    a, b = F.normalize(torch.randn(5, 8), dim=-1), F.normalize(torch.randn(5, 8), dim=-1)
    t, bias = 7.0, -3.0
    naive_clip = 0.0
    for i in range(5):
        row = torch.tensor([t * a[i] @ b[j] for j in range(5)])
        col = torch.tensor([t * a[j] @ b[i] for j in range(5)])
        naive_clip += -(row[i] - row.logsumexp(0)) - (col[i] - col.logsumexp(0))
    assert math.isclose(clip_loss(a, b, t).item(), naive_clip.item() / 10, rel_tol=1e-5)
    naive_sig = sum(-F.logsigmoid(torch.tensor((1 if i == j else -1)
                                               * (t * float(a[i] @ b[j]) + bias)))
                    for i in range(5) for j in range(5)) / 5
    assert math.isclose(siglip_loss(a, b, t, bias).item(), naive_sig.item(), rel_tol=1e-5)
    assert torch.isclose(clip_loss(a, b, t), clip_loss(b, a, t))
    assert torch.isclose(siglip_loss(a, b, t, bias), siglip_loss(b, a, t, bias))
    # perfectly separated pairs: both losses fall as the temperature grows
    e = torch.eye(5)
    assert clip_loss(e, e, 100.0) < clip_loss(e, e, 1.0) and clip_loss(e, e, 100.0) < 1e-6
    assert siglip_loss(e, e, 100.0, -50.0) < siglip_loss(e, e, 1.0, -0.5)


def test_siglip_pair_term_does_not_depend_on_the_batch():
    """The positive term of pair 0 is the same in any batch (no softmax normaliser);
    CLIP's is not."""
    torch.manual_seed(1)
    a, b = F.normalize(torch.randn(8, 4), dim=-1), F.normalize(torch.randn(8, 4), dim=-1)
    t = 5.0
    clip_small = F.cross_entropy(t * a[:2] @ b[:2].T, torch.arange(2), reduction="none")[0]
    clip_big = F.cross_entropy(t * a @ b.T, torch.arange(8), reduction="none")[0]
    assert not torch.isclose(clip_small, clip_big)
    sig = lambda n: -F.logsigmoid(t * a[0] @ b[0] - 2.0)  # noqa: E731 the diagonal term, any n
    assert torch.isclose(sig(2), sig(8))


def test_learnable_temperature_and_bias():
    m = ContrastiveModel(ViTConfig(**TINY_VISION),
                         TextConfig(vocab_size=400, hidden_size=32, num_layers=1, num_heads=2,
                                    intermediate_size=64), loss="siglip")
    assert math.isclose(m.logit_scale.exp().item(), 10.0, rel_tol=1e-5)
    assert m.logit_bias.item() == -10.0
    assert m.logit_scale.requires_grad and m.logit_bias.requires_grad
    c = ContrastiveModel(ViTConfig(**TINY_VISION),
                         TextConfig(vocab_size=400, hidden_size=32, num_layers=1, num_heads=2,
                                    intermediate_size=64), loss="clip")
    assert math.isclose(c.logit_scale.exp().item(), 1 / 0.07, rel_tol=1e-5)
    assert not c.logit_bias.requires_grad
    with pytest.raises(ValueError, match="clip"):
        ContrastiveModel(loss="softmax")


def test_text_encoder_is_causal_and_ignores_padding(tokenizer):
    m = ContrastiveModel(ViTConfig(**TINY_VISION),
                         TextConfig(vocab_size=len(tokenizer), hidden_size=32, num_layers=2,
                                    num_heads=2, intermediate_size=64)).eval()
    short = tokenize(tokenizer, ["a red circle."])
    padded = tokenize(tokenizer, ["a red circle.",
                                  "there are 2 objects. a small blue star is in the top left."])
    assert padded["input_ids"].shape[1] > short["input_ids"].shape[1]
    with torch.no_grad():
        e1 = m.encode_text(**short)[0]
        e2 = m.encode_text(**padded)[0]
    torch.testing.assert_close(e1, e2, atol=1e-5, rtol=1e-5)
    assert short["input_ids"][0, -1] == tokenizer.eos_token_id
    with pytest.raises(ValueError, match="max_length"):
        tokenize(tokenizer, ["a red circle " * 30], max_length=16)


def test_recall_at_k_hand_case():
    img = torch.eye(3)
    txt = torch.tensor([[1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]])  # texts 1 and 2 swapped
    r = recall_at_k(img, txt, ks=(1, 2))
    assert math.isclose(r["image->text R@1"], 1 / 3, rel_tol=1e-6)
    assert math.isclose(r["text->image R@1"], 1 / 3, rel_tol=1e-6)
    assert r["image->text R@2"] == 1.0  # the swapped partners are second


def test_zero_shot_above_chance_after_short_training(tokenizer, one_thread):
    from minimllm.data import COLORS
    from minimllm.train import TrainConfig, train

    torch.manual_seed(0)
    pairs = make_pairs(400, seed=0, image_size=32, min_objects=1, max_objects=1)
    test = make_pairs(96, seed=1, image_size=32, min_objects=1, max_objects=1)
    labels = torch.tensor([COLORS.index(s["objects"][0]["color"]) for s in test["scenes"]])
    model = ContrastiveModel(ViTConfig(**TINY_VISION),
                             TextConfig(vocab_size=len(tokenizer), hidden_size=32, num_layers=1,
                                        num_heads=2, intermediate_size=64),
                             embed_dim=32, loss="siglip")
    train(model, contrastive_loss, PairSampler(pairs, tokenizer, 32, seed=0),
          TrainConfig(steps=250, lr=3e-3, weight_decay=0.0, log_every=0, device="cpu", seed=0))
    emb = class_embeddings(model, tokenizer, COLORS, ["a small {} circle.", "a large {} square."])
    acc = zero_shot_accuracy(embed_images(model, test["pixel_values"]), labels, emb)
    assert acc > 2 / len(COLORS), acc  # chance is 1/8


def test_pair_sampler_batches(tokenizer):
    pairs = make_pairs(20, seed=0, captions_per_scene=2, image_size=32)
    batch = PairSampler(pairs, tokenizer, 8)(0)
    assert batch["pixel_values"].shape == (8, 3, 32, 32)
    assert batch["input_ids"].shape == batch["attention_mask"].shape
    assert batch["input_ids"].shape[0] == 8
    assert batch["attention_mask"][:, -1].any()  # trimmed to the longest caption in the batch
    with pytest.raises(ValueError, match="batch_size"):
        PairSampler(pairs, tokenizer, 64)
    # a batch is a function of (seed, step) only:
    # a resumed run, or a fresh sampler, sees the same one
    sampler, fresh = (PairSampler(pairs, tokenizer, 8, seed=5),
                      PairSampler(pairs, tokenizer, 8, seed=5))
    later = [sampler(step) for step in range(4)][-1]
    assert torch.equal(fresh(3)["input_ids"], later["input_ids"])
    assert torch.equal(fresh(3)["pixel_values"], later["pixel_values"])
    assert not torch.equal(fresh(2)["pixel_values"], later["pixel_values"])
    # hard-negative batches: every scene shares one colour
    hard = PairSampler(pairs, tokenizer, 4, hard_negatives=1.0, seed=3)
    for step in range(3):
        b = hard(step)
        idx = [next(i for i in range(20) if torch.equal(pairs["pixel_values"][i], x))
               for x in b["pixel_values"]]
        colours = [{o["color"] for o in pairs["scenes"][i]["objects"]} for i in idx]
        assert set.intersection(*colours), colours
    with pytest.raises(ValueError, match="hard_negatives"):
        PairSampler(pairs, tokenizer, 4, hard_negatives=1.5)
    with pytest.raises(ValueError, match="slot"):
        class_embeddings(ContrastiveModel(ViTConfig(**TINY_VISION)), tokenizer, ["red"],
                         ["no slot"])


def test_bad_images_give_clear_errors():
    m = ContrastiveModel(ViTConfig(**TINY_VISION))
    with pytest.raises(ValueError, match="channels"):
        m.encode_image(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match="not divisible"):
        m.encode_image(torch.randn(2, 3, 30, 30))


def test_load_vision_encoder_paths_and_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIMLLM_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="make checkpoints"):
        load_vision_encoder()
    ref = VisionTransformer(ViTConfig(**TINY_VISION))
    ref.save_pretrained(tmp_path / "data" / "checkpoints" / "vision")
    assert load_vision_encoder().config.hidden_size == 32
    mine = VisionTransformer(ViTConfig(**{**TINY_VISION, "hidden_size": 16}))
    mine.save_pretrained(tmp_path / "data" / "artifacts" / "vision")
    assert load_vision_encoder().config.hidden_size == 16  # the reader's own artifact wins
    (tmp_path / "data" / "artifacts" / "vision" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a valid"):
        load_vision_encoder()


def test_train_reference_quick_writes_a_loadable_checkpoint(tmp_path, one_thread):
    import json

    out = train_reference(tmp_path / "vision", quick=True)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["objective"] == "siglip" and "zero_shot_color" in metrics
    enc = load_vision_encoder(out)
    assert enc(torch.zeros(1, 3, 64, 64)).last_hidden_state.shape == (1, 64, 128)
