"""Tests of minimllm.xattn (Method B, cross-attention fusion): the model is the text LM at
initialisation, Flamingo's media-location masking (text sees only its most recent image, nothing
before the first), gates that learn, a frozen LM that stays frozen, generation, save / load, NVLM's
hybrid, bad input, and equivalence with transformers' Mllama."""

import copy
import io

import numpy as np
import pytest
import torch

from minimllm.data import make_caption, render_scene, sample_scene, text_corpus
from minimllm.lm import LanguageModel, LMConfig
from minimllm.mllm import MLLMProcessor
from minimllm.tokenizer import IMAGE_TOKEN, IMAGE_TOKEN_ID, train_tokenizer
from minimllm.train import TrainConfig, train
from minimllm.vision import ViTConfig
from minimllm.xattn import (
    CrossAttentionMLLM,
    GatedCrossAttention,
    ImageContext,
    XAttnConfig,
    configure_flamingo,
)

IMAGE_SIZE = 32
VIT = dict(image_size=IMAGE_SIZE, patch_size=8, hidden_size=16, num_layers=1, num_heads=2,
           intermediate_size=32)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(text_corpus(n_scenes=60, seed=0), vocab_size=300)


def tiny_lm(vocab_size=300, seed=0):
    torch.manual_seed(seed)
    return LanguageModel(LMConfig(vocab_size=vocab_size, dim=32, n_layers=3, n_heads=4,
                                  n_kv_heads=2, ffn_dim=64, max_seq_len=96)).eval()


def tiny(lm=None, seed=0, **kw):
    lm = lm or tiny_lm(seed=seed)
    torch.manual_seed(seed + 1)
    kw.setdefault("num_image_tokens", 4)
    kw.setdefault("cross_attention_layers", [0, 2])
    return CrossAttentionMLLM(XAttnConfig(vision=ViTConfig(**VIT), **kw), lm=lm).eval()


def open_gates(model, value=0.7):
    """Gates away from 0 (as after training), so that the image reaches the text."""
    with torch.no_grad():
        for block in model.cross_attention_blocks():
            block.cross_attn_attn_gate.fill_(value)
            block.cross_attn_mlp_gate.fill_(-value)
    return model


def pixels(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g) * 2 - 1


def ids_with_images(positions, T=12, B=2, seed=0):
    ids = torch.randint(10, 300, (B, T), generator=torch.Generator().manual_seed(seed))
    for p in positions:
        ids[:, p] = IMAGE_TOKEN_ID
    return ids


def test_at_initialisation_the_model_is_the_text_lm():
    lm = tiny_lm()
    reference = copy.deepcopy(lm)
    model = tiny(lm)
    ids = ids_with_images([3])
    expected = reference(ids).logits
    assert torch.equal(model(ids, pixels(2)).logits, expected)        # with images
    text = torch.randint(10, 300, (2, 9))
    assert torch.equal(model(text).logits, reference(text).logits)    # and without


def test_changing_the_image_never_changes_logits_before_it():
    model = open_gates(tiny())
    ids = ids_with_images([5])
    a, b = model(ids, pixels(2, seed=0)).logits, model(ids, pixels(2, seed=1)).logits
    assert torch.equal(a[:, :5], b[:, :5])
    assert (a[:, 5:] - b[:, 5:]).abs().max() > 1e-3   # after it, the image matters


def test_text_before_any_image_gets_exactly_nothing_from_either_branch():
    config = tiny_lm().config
    block = GatedCrossAttention(config)
    with torch.no_grad():
        block.cross_attn_attn_gate.fill_(1.0)
        block.cross_attn_mlp_gate.fill_(1.0)
    x = torch.randn(1, 6, config.dim)
    context = ImageContext(torch.randn(1, 1, 4, config.dim), torch.tensor([[-1, -1, 0, 0, 0, 0]]))
    mask, has_image = context.masks(0, 6)
    y = block(x, context.states.flatten(1, 2), mask, has_image)
    assert torch.equal(y[:, :2], x[:, :2])           # no image yet: the identity, exactly
    assert (y[:, 2:] - x[:, 2:]).abs().min() > 0      # both branches add something after it


def test_with_two_images_each_token_sees_only_its_most_recent_one():
    model = open_gates(tiny())
    ids = ids_with_images([2, 7], B=1)
    embeds, context = model.embed_with_context(ids, pixels(2))
    assert context.image_index.tolist() == [[-1, -1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]]
    mask, has_image = context.masks(0, 12)
    M = model.num_image_tokens
    assert mask.shape == (1, 1, 12, 2 * M)
    assert mask[0, 0, 3, :M].all() and not mask[0, 0, 3, M:].any()   # image 1 only
    assert mask[0, 0, 9, M:].all() and not mask[0, 0, 9, :M].any()    # image 2 only
    # one block, same text input: the first image's states do not reach positions after the second
    block = model.cross_attention_blocks()[0]
    other = context.states.clone()
    other[:, 0] = torch.randn_like(other[:, 0])
    y1 = block(embeds, context.states.flatten(1, 2), mask, has_image)
    y2 = block(embeds, other.flatten(1, 2), mask, has_image)
    assert torch.equal(y1[:, 7:], y2[:, 7:]) and not torch.equal(y1[:, 2:7], y2[:, 2:7])


def test_samples_with_different_numbers_of_images_in_one_batch():
    model = open_gates(tiny())
    ids = ids_with_images([], B=2)
    ids[0, 1], ids[1, 1], ids[1, 6] = IMAGE_TOKEN_ID, IMAGE_TOKEN_ID, IMAGE_TOKEN_ID
    images = pixels(3)
    batch = model(ids, images).logits
    alone = model(ids[:1], images[:1]).logits             # row 0 has one image, row 1 two
    assert torch.allclose(batch[:1], alone, atol=1e-5)
    assert torch.allclose(batch[1:], model(ids[1:], images[1:]).logits, atol=1e-5)


def test_gates_get_gradient_at_initialisation_and_the_frozen_lm_none():
    model = configure_flamingo(tiny()).train()
    ids = ids_with_images([1])
    labels = ids.clone()
    labels[:, :2] = -100
    model(ids, pixels(2), labels=labels).loss.backward()
    for block in model.cross_attention_blocks():
        assert block.cross_attn_attn_gate.grad.abs().item() > 0
        assert block.cross_attn_mlp_gate.grad.abs().item() > 0
    assert all(p.grad is None for n, p in model.lm.named_parameters() if ".cross." not in n)
    assert all(p.grad is None for p in model.vision.parameters())


def caption_batch(tokenizer, model, n=2, seed=5):
    rng = np.random.default_rng(seed)
    scenes = [sample_scene(rng, n_objects=1, image_size=IMAGE_SIZE) for _ in range(n)]
    while len({s["objects"][0]["color"] for s in scenes}) < n:
        scenes = [sample_scene(rng, n_objects=1, image_size=IMAGE_SIZE) for _ in range(n)]
    pics = [render_scene(s) for s in scenes]
    captions = [make_caption(s, style="positions") for s in scenes]
    processor = MLLMProcessor.for_model(model, tokenizer)
    return processor([IMAGE_TOKEN] * n, pics, targets=captions), captions


@pytest.mark.parametrize("thumbnails", [0, 4], ids=["method_b", "nvlm_h"])
def test_overfit_one_batch_keeps_the_lm_frozen_and_captions_follow_the_image(tokenizer,
                                                                              thumbnails,
                                                                              one_thread):
    model = tiny(tiny_lm(len(tokenizer)), num_thumbnail_tokens=thumbnails)
    batch, captions = caption_batch(tokenizer, model)
    # Flamingo starts from a language model that knows the language: the LM first learns the
    # captions as text (it cannot tell which one belongs to which image), then it is frozen
    text = tokenizer([c + tokenizer.eos_token for c in captions], padding=True,
                     return_tensors="pt").input_ids
    train(model.lm, lambda m, b: m(b, labels=b).loss, lambda step: text,
          TrainConfig(steps=60, lr=1e-2, warmup_steps=5, log_every=0, device="cpu"))
    configure_flamingo(model)
    frozen = {k: v.clone() for k, v in model.lm.state_dict().items() if ".cross." not in k}
    history = train(model, lambda m, b: m(b["input_ids"], b["pixel_values"],
                                          labels=b["labels"]).loss,
                    lambda step: batch, TrainConfig(steps=150, lr=1e-2, warmup_steps=5,
                                                    log_every=0, device="cpu"))
    # the LM alone cannot tell the two colours apart; with the image the loss roughly halves
    assert history.losses[-1] < 0.7 * history.losses[0]
    after = model.lm.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in frozen.items())   # the LM did not move
    if not thumbnails:  # Method B reads the image only through the gates: they opened
        assert all(abs(g) > 0.01 for g in model.gates()["attn"])
    processor = MLLMProcessor.for_model(model, tokenizer)
    prompt = processor([IMAGE_TOKEN] * 2, batch["pixel_values"])
    new = model.generate(prompt["input_ids"], prompt["pixel_values"], max_new_tokens=40,
                         eos_token_id=tokenizer.eos_token_id)
    assert processor.decode(new) == captions                           # each image its caption
    uncached = model.generate(prompt["input_ids"], prompt["pixel_values"], max_new_tokens=40,
                              eos_token_id=tokenizer.eos_token_id, use_cache=False)
    assert torch.equal(new, uncached)


def test_save_load_round_trip(tmp_path):
    model = open_gates(tiny(num_thumbnail_tokens=4))
    model.save_pretrained(tmp_path / "m")
    loaded = CrossAttentionMLLM.from_pretrained(tmp_path / "m", device="cpu")
    assert loaded.config == model.config and loaded.config.cross_attention_layers == [0, 2]
    ids = ids_with_images([2, 3, 4, 5])
    assert torch.equal(loaded(ids, pixels(2)).logits, model(ids, pixels(2)).logits)


def test_bad_input_raises_clear_errors():
    model = tiny()
    with pytest.raises(ValueError, match="markers and images do not match"):
        model(ids_with_images([3]), pixels(3))                       # 2 markers, 3 images
    with pytest.raises(ValueError, match="no pixel_values"):
        model(ids_with_images([3]))
    with pytest.raises(ValueError, match="vision features must be"):
        model(ids_with_images([3]), vision_features=torch.randn(2, 16, 7))
    hybrid = tiny(num_thumbnail_tokens=4)
    with pytest.raises(ValueError, match="4 per image"):
        hybrid(ids_with_images([3]), pixels(2))                      # 1 marker, not 4
    with pytest.raises(ValueError, match="cross_attention_layers"):
        XAttnConfig(vision=ViTConfig(**VIT), lm=tiny_lm().config, cross_attention_layers=[3])
    with pytest.raises(ValueError, match="cross_attention_layers"):
        XAttnConfig(cross_attention_layers=[2, 0])


def mllama_logits(hf, model, ids, images):
    from minimllm.xattn import mllama_text_inputs

    inputs = mllama_text_inputs(model, ids, images)
    return hf.lm_head(hf.model.language_model(**inputs).last_hidden_state)


def test_mllama_language_model_gives_the_same_logits_from_the_same_image_states():
    from minimllm.xattn import to_transformers

    model = open_gates(tiny(cross_attention_layers=[1, 2]))
    hf = to_transformers(model)
    assert [type(layer).__name__ for layer in hf.model.language_model.layers] == [
        "MllamaSelfAttentionDecoderLayer", "MllamaCrossAttentionDecoderLayer",
        "MllamaSelfAttentionDecoderLayer", "MllamaCrossAttentionDecoderLayer",
        "MllamaSelfAttentionDecoderLayer"]
    # image first: transformers' Mllama leaks attention output into text before the first image
    # (its row mask covers the MLP branch only), so equivalence is checked where that cannot matter
    ids = ids_with_images([0, 6])
    ids[1, 6], ids[1, 1] = 50, IMAGE_TOKEN_ID      # row 1: two images side by side at the start
    images = pixels(4)
    ours, theirs = model(ids, images).logits, mllama_logits(hf, model, ids, images)
    assert (theirs - ours).norm() / ours.norm() < 1e-5
    other = mllama_logits(hf, model, ids, pixels(4, seed=1))
    assert (other - theirs).abs().max() > 1e-3      # the image states do reach Mllama's logits
    text = torch.randint(10, 300, (2, 9))
    text_only = hf.lm_head(hf.model.language_model(input_ids=text, use_cache=False)
                           .last_hidden_state)
    assert torch.allclose(text_only, model(text).logits, atol=1e-5)


def test_flamingo_recipe_trains_the_blocks_and_projectors_only():
    model = configure_flamingo(tiny(num_thumbnail_tokens=4))
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"projector", "thumbnail_projector", "lm"}
    assert all(".cross." in n for n, p in model.lm.named_parameters() if p.requires_grad)
    with_vision = configure_flamingo(tiny(), train_vision=True)
    assert any(p.requires_grad for p in with_vision.vision.parameters())
    assert all(".cross." in n for n, p in with_vision.lm.named_parameters() if p.requires_grad)


def test_minimllm_chat_loads_a_method_b_model_and_answers_as_chat_does(tokenizer, tmp_path,
                                                                       monkeypatch, capsys):
    from minimllm.chat import ChatProcessor, chat, image_turn
    from minimllm.cli import main

    model = open_gates(tiny())
    assert model.tokens_per_image == 1 and tiny(num_thumbnail_tokens=4).tokens_per_image == 4
    model.save_pretrained(tmp_path / "b", tokenizer)
    image = render_scene(sample_scene(np.random.default_rng(3)), image_size=IMAGE_SIZE)
    image.save(tmp_path / "scene.png")
    processor = ChatProcessor.for_model(model, tokenizer)
    assert processor.num_image_tokens == 1 and processor.image_size == IMAGE_SIZE
    questions = ["what colour is the circle?", "how many objects are there?"]
    want = [chat(model, processor, [image_turn(q)], [image], max_new_tokens=5)[0]
            for q in questions]
    args = ["chat", "--model", str(tmp_path / "b"), "--image", str(tmp_path / "scene.png"),
            "--max-new-tokens", "5"]
    assert main(args + [questions[0]]) == 0
    assert capsys.readouterr().out == want[0] + "\n"
    # no question: one per line, until an empty line
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(questions) + "\n\nnot asked\n"))
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.endswith("".join(f"> {w}\n" for w in want) + "> "), "each answer, then it stops"
