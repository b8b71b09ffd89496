"""Tests of minimllm.mllm (Method A, LLaVA-style): processor, merge, labels, freezing, LLaVA
equivalence, overfitting one batch, save / load; and of minimllm.captioning, which trains and
scores it: image-conditioned generation, caption scoring, the main job."""

import numpy as np
import pytest
import torch

from minimllm.captioning import caption_accuracy, generate_captions, parse_caption, vision_features
from minimllm.data import make_caption, render_scene, sample_scene, text_corpus
from minimllm.lm import LMConfig
from minimllm.mllm import (
    MLLM,
    MLLMConfig,
    MLLMProcessor,
    configure_stage,
    merge_image_features,
    to_transformers,
)
from minimllm.tokenizer import IMAGE_TOKEN, IMAGE_TOKEN_ID, train_tokenizer
from minimllm.train import trainable_report
from minimllm.vision import ViTConfig, to_pixel_values

IMAGE_SIZE = 32
VIT = dict(image_size=IMAGE_SIZE, patch_size=8, hidden_size=16, num_layers=1, num_heads=2,
           intermediate_size=32)
N = (IMAGE_SIZE // 8) ** 2  # 16 patches


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(text_corpus(n_scenes=60, seed=0), vocab_size=300)


def tiny(tokenizer, projector="mlp", seed=0, **kw):
    torch.manual_seed(seed)
    lm = LMConfig(vocab_size=len(tokenizer), dim=32, n_layers=2, n_heads=4, n_kv_heads=2,
                  ffn_dim=64, max_seq_len=96)
    return MLLM(MLLMConfig(vision=ViTConfig(**VIT), lm=lm, projector=projector, **kw)).eval()


def images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [render_scene(sample_scene(rng, image_size=IMAGE_SIZE)) for _ in range(n)]


def test_defaults_are_the_course_mllm():
    model = MLLM()
    assert model.config.projector == "mlp" and model.num_image_tokens == 64
    assert model.projector.kind == "mlp" and model.config.image_token_id == IMAGE_TOKEN_ID == 3


def test_processor_expands_each_placeholder_to_m_tokens(tokenizer):
    proc = MLLMProcessor(tokenizer, num_image_tokens=5, image_size=IMAGE_SIZE)
    assert proc.expand(f"{IMAGE_TOKEN} hi") == IMAGE_TOKEN * 5 + " hi"
    out = proc([f"{IMAGE_TOKEN} describe.", f"{IMAGE_TOKEN}{IMAGE_TOKEN} compare."], images(3))
    ids = out["input_ids"]
    assert (ids[0] == IMAGE_TOKEN_ID).sum() == 5 and (ids[1] == IMAGE_TOKEN_ID).sum() == 10
    assert out["pixel_values"].shape == (3, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert ids[0, 0] == tokenizer.bos_token_id and (ids[0, 1:6] == IMAGE_TOKEN_ID).all()
    assert (out["attention_mask"].sum(1).tolist()
            == [int((r != tokenizer.pad_token_id).sum()) for r in ids])
    with pytest.raises(ValueError, match="placeholders"):
        proc([f"{IMAGE_TOKEN} one", "no image"], images(2))
    with pytest.raises(ValueError, match="placeholders"):
        proc(["no image here"], images(1))


def test_labels_masked_on_image_and_prompt_positions(tokenizer):
    proc = MLLMProcessor(tokenizer, num_image_tokens=4, image_size=IMAGE_SIZE)
    targets = ["a large red circle.", "a small blue square in the center and a large green star."]
    out = proc([f"{IMAGE_TOKEN} describe the image.", IMAGE_TOKEN], images(2), targets=targets)
    ids, labels = out["input_ids"], out["labels"]
    for i, (prompt, target) in enumerate(zip([f"{IMAGE_TOKEN} describe the image.", IMAGE_TOKEN],
                                             targets)):
        n_prompt = len(tokenizer(proc.expand(prompt)).input_ids)
        answer = tokenizer(target, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        assert (labels[i, :n_prompt] == -100).all()                       # start, image, prompt
        assert labels[i, n_prompt:n_prompt + len(answer)].tolist() == answer  # target and </s>
        assert (labels[i, n_prompt + len(answer):] == -100).all()           # padding
    assert (labels[ids == IMAGE_TOKEN_ID] == -100).all()


def test_merge_scatters_in_order_and_count_check_raises(tokenizer):
    embeds = torch.zeros(2, 6, 4)
    ids = torch.tensor([[1, 3, 3, 5, 0, 0], [1, 7, 3, 3, 3, 3]])
    feats = torch.randn(3, 2, 4)
    merged = merge_image_features(embeds, ids, feats)
    assert torch.equal(merged[0, 1:3], feats[0]) and torch.equal(merged[1, 2:4], feats[1])
    assert torch.equal(merged[1, 4:6], feats[2]) and (merged[ids != 3] == 0).all()
    with pytest.raises(ValueError, match="do not match"):
        merge_image_features(embeds, ids, feats[:2])
    model = tiny(tokenizer)
    # 1 placeholder, M = 16
    unexpanded = tokenizer(f"{IMAGE_TOKEN} a red circle.", return_tensors="pt").input_ids
    pixels = to_pixel_values(images(1))
    with pytest.raises(ValueError, match="do not match"):
        model(unexpanded, pixels)
    with pytest.raises(ValueError, match="no pixel_values"):
        model(unexpanded)


def test_stage1_trains_only_the_projector(tokenizer):
    model = configure_stage(tiny(tokenizer), 1)
    proc = MLLMProcessor(tokenizer, model.num_image_tokens, IMAGE_SIZE)
    batch = proc([IMAGE_TOKEN] * 2, images(2), targets=["a red circle.", "a blue star."])
    report = trainable_report(model, show=False)
    assert report["total"][0] == report["projector"][0] == report["projector"][1] > 0
    model(batch["input_ids"], batch["pixel_values"], labels=batch["labels"]).loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.projector.parameters())
    assert all(p.grad is None for p in [*model.vision.parameters(), *model.lm.parameters()])
    configure_stage(model, 2)
    assert not any(p.requires_grad for p in model.vision.parameters())
    assert all(p.requires_grad for p in [*model.lm.parameters(), *model.projector.parameters()])
    with pytest.raises(ValueError, match="stage"):
        configure_stage(model, 3)


@pytest.mark.parametrize("projector,layer", [("mlp", -1), ("linear", -1), ("mlp", -2)])
def test_llava_equivalence(tokenizer, projector, layer):
    model = tiny(tokenizer, projector, vision_feature_layer=layer)
    for p in model.parameters():  # non-trivial weights everywhere (biases and norms included)
        p.data.add_(torch.randn_like(p) * 0.05)
    proc = MLLMProcessor(tokenizer, model.num_image_tokens, IMAGE_SIZE)
    inputs = proc([f"{IMAGE_TOKEN} the image shows", f"a {IMAGE_TOKEN} b"], images(2, seed=3))
    hf = to_transformers(model)
    assert type(hf).__name__ == "LlavaForConditionalGeneration"
    assert hf.config.vision_feature_select_strategy == "full"
    assert hf.config.image_token_id == IMAGE_TOKEN_ID
    with torch.no_grad():
        ours = model(inputs["input_ids"], inputs["pixel_values"]).logits
        theirs = hf(input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"]).logits
        other = hf(input_ids=inputs["input_ids"],
                   pixel_values=inputs["pixel_values"].flip(0)).logits
    assert ((ours - theirs).norm() / theirs.norm()).item() < 1e-5
    # the images really go through LLaVA's merge
    assert not torch.allclose(other, theirs, atol=1e-4)


def test_to_transformers_refuses_projectors_llava_lacks(tokenizer):
    with pytest.raises(ValueError, match="no equivalent"):
        to_transformers(tiny(tokenizer, "c_abstractor", num_image_tokens=4))


def test_overfit_one_batch_and_generation_depends_on_the_image(tokenizer):
    model = configure_stage(tiny(tokenizer), 2)
    proc = MLLMProcessor(tokenizer, model.num_image_tokens, IMAGE_SIZE)
    rng = np.random.default_rng(5)
    scenes = [sample_scene(rng, n_objects=1, image_size=IMAGE_SIZE) for _ in range(2)]
    while scenes[1]["objects"][0]["color"] == scenes[0]["objects"][0]["color"]:
        scenes[1] = sample_scene(rng, n_objects=1, image_size=IMAGE_SIZE)
    pics = [render_scene(s) for s in scenes]
    caps = [make_caption(s, style="positions") for s in scenes]
    batch = proc([IMAGE_TOKEN] * 2, pics, targets=caps)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(100):
        loss = model(batch["input_ids"], batch["pixel_values"], labels=batch["labels"]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1
    generated = generate_captions(model, proc, pics, max_new_tokens=30)
    assert generated == caps  # the same prompt, two images, two different (right) captions
    assert caption_accuracy(scenes, generated)["accuracy"] == 1.0
    # the KV cache changes nothing
    inputs = proc([IMAGE_TOKEN] * 2, pics)
    with_cache = model.generate(inputs["input_ids"], inputs["pixel_values"], max_new_tokens=12,
                                eos_token_id=None)
    no_cache = model.generate(inputs["input_ids"], inputs["pixel_values"], max_new_tokens=12,
                              eos_token_id=None, use_cache=False)
    assert torch.equal(with_cache, no_cache)


def test_caption_accuracy_scores_attributes_and_positions():
    scene = {"objects": [
        {"color": "red", "shape": "circle", "size": "large", "position": "top left"},
        {"color": "blue", "shape": "square", "size": "small", "position": "center"},
    ], "defects": []}
    ref = make_caption(scene, style="positions")
    assert ref == "a large red circle in the top left and a small blue square in the center."
    assert caption_accuracy([scene], [ref]) == {"accuracy": 1.0, "named": 1.0, "position": 1.0,
                                                "size": 1.0, "hallucinated": 0.0, "exact": 1.0}
    wrong = "a large red circle in the top center and a small green square in the center."
    s = caption_accuracy([scene], [wrong])
    assert s["accuracy"] == 0.0 and s["named"] == 0.5 and s["hallucinated"] == 0.5
    assert s["position"] == 0.5  # "center" is named (for the wrong object), "top left" is not
    other_style = ("there are 2 objects. a large red circle is in the top left. "
                   "a small blue star is in the center.")
    assert caption_accuracy([scene], [other_style], style=None)["accuracy"] == 0.5
    assert parse_caption("a large red circle above a small blue square.")[0]["position"] is None
    with pytest.raises(ValueError):
        caption_accuracy([scene], [])


def test_save_load_round_trip(tokenizer, tmp_path):
    model = tiny(tokenizer, "c_abstractor", num_image_tokens=4)
    path = model.save_pretrained(tmp_path / "mllm", tokenizer)
    loaded, proc = MLLM.from_pretrained(path, device="cpu"), MLLMProcessor.from_pretrained(path)
    assert proc.num_image_tokens == loaded.num_image_tokens == 4
    inputs = proc([IMAGE_TOKEN], images(1))
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, loaded(**inputs).logits)
    (path / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="not a saved MLLM"):
        MLLM.from_pretrained(path)


def test_the_callers_config_is_left_as_it_was(tokenizer):
    config = MLLMConfig(vision=ViTConfig(**VIT))
    before = config.to_dict()
    model = MLLM(config, lm=tiny(tokenizer).lm)
    assert config.to_dict() == before, "MLLM must not write the LM's config into the caller's"
    assert model.config.lm.vocab_size == len(tokenizer) != config.lm.vocab_size


def test_precomputed_vision_features_give_the_same_logits(tokenizer):
    model = tiny(tokenizer)
    proc = MLLMProcessor(tokenizer, model.num_image_tokens, IMAGE_SIZE)
    inputs = proc([IMAGE_TOKEN] * 3, images(3))
    feats = vision_features(model, inputs["pixel_values"])
    assert feats.shape == (3, N, 16)
    with torch.no_grad():
        a = model(inputs["input_ids"], inputs["pixel_values"]).logits
        b = model(inputs["input_ids"], vision_features=feats).logits
    torch.testing.assert_close(a, b)


def test_blind_caption_scores_score_one_empty_scene_caption_and_the_prior_against_every_scene(
        monkeypatch):
    import minimllm.captioning as captioning
    from minimllm.captioning import blind_caption_scores
    from minimllm.data import BACKGROUND_RGB

    rng = np.random.default_rng(0)
    scenes = [sample_scene(rng) for _ in range(3)]
    data = {"scenes": scenes, "images": [render_scene(s, IMAGE_SIZE) for s in scenes]}
    obj = scenes[0]["objects"][0]
    written = f"a {obj['size']} {obj['color']} {obj['shape']} in the {obj['position']}."
    shown = []

    def fake_generate(model, processor, images, **kw):
        shown.extend(images)
        return [written] * len(images)

    monkeypatch.setattr(captioning, "generate_captions", fake_generate)
    train_captions = ["a small red circle in the center."] * 2 + [written]
    blind = blind_caption_scores(None, None, data, train_captions)
    # one empty scene of the data's size, the background alone, captioned once
    assert len(shown) == 1 and shown[0].size == data["images"][0].size
    assert (np.asarray(shown[0]) == np.array(BACKGROUND_RGB)).all()
    # each caption is scored against every real scene
    assert blind["empty_scene"] == {"caption": written, **caption_accuracy(scenes, [written] * 3)}
    assert 1 / sum(len(s["objects"]) for s in scenes) <= blind["empty_scene"]["accuracy"] < 1
    prior = "a small red circle in the center."   # the most frequent training caption
    assert blind["prior"] == {"caption": prior, **caption_accuracy(scenes, [prior] * 3)}


def test_main_job_quick_trains_the_encoder_and_saves_what_it_reports(tmp_path, capsys):
    """The main job's smoke run: stage 2 changes the vision encoder (train_vision), the saved
    model reloads with the same weights, and metrics.json holds the accuracy it returned and
    printed, beside its blind baselines."""
    import json
    import re

    from minimllm.captioning import MainJobConfig, main_job
    from minimllm.mllm import load_towers

    assert MainJobConfig().train_vision and MainJobConfig.quick().train_vision
    start_vision = load_towers(allow_random=True, device="cpu")[0]
    metrics = main_job(out_dir=tmp_path / "mllm", quick=True)
    model = MLLM.from_pretrained(tmp_path / "mllm", device="cpu")
    before, after = start_vision.state_dict(), model.vision.state_dict()
    # vision_feature_layer=-4 reads the first block: it trains; the last block is not in the path
    assert not torch.equal(after["layers.0.self_attn.q_proj.weight"],
                           before["layers.0.self_attn.q_proj.weight"])
    assert torch.equal(after["layers.3.mlp.fc1.weight"], before["layers.3.mlp.fc1.weight"])
    saved = json.loads((tmp_path / "mllm" / "metrics.json").read_text())
    assert saved["accuracy"] == round(metrics["accuracy"], 4) and 0.0 <= saved["accuracy"] <= 1.0
    line = next(x for x in capsys.readouterr().out.splitlines()
                if x.startswith("held-out caption accuracy"))
    printed = [float(v) for v in re.findall(r"\d\.\d{3}", line)[:3]]
    # the same figures, printed to 3 decimals and saved to 4
    assert printed == pytest.approx([saved[k] for k in
                                     ("accuracy", "accuracy_empty_scene", "accuracy_prior")],
                                    abs=6e-4), line
    assert set(saved["blind_captions"]) == {"empty_scene", "prior"}
    # quick mode sets no target
    assert saved["passed"] is True and saved["settings"]["n_train"] == 64
    assert (tmp_path / "mllm" / "captions.png").stat().st_size > 1000
    assert metrics["loss_png"] == str(tmp_path / "mllm" / "loss.png")
    assert (tmp_path / "mllm" / "loss.png").stat().st_size > 1000


def test_minimllm_train_exits_non_zero_below_the_target(monkeypatch):
    import minimllm.captioning
    from minimllm.cli import main

    for passed, code in ((False, 1), (True, 0)):
        monkeypatch.setattr(minimllm.captioning, "main_job",
                            lambda quick, seed, p=passed: {"passed": p})
        assert main(["train", "--quick"]) == code


@pytest.mark.parametrize("layer", [-1, -2, -4])
def test_unfreeze_vision_trains_exactly_the_encoder_parameters_that_get_gradients(tokenizer, layer):
    from minimllm.mllm import unfreeze_vision

    torch.manual_seed(0)
    lm = LMConfig(vocab_size=len(tokenizer), dim=32, n_layers=1, n_heads=4, n_kv_heads=2,
                  ffn_dim=64, max_seq_len=96)
    model = MLLM(MLLMConfig(vision=ViTConfig(**dict(VIT, num_layers=3)), lm=lm,
                            vision_feature_layer=layer))
    configure_stage(model, 2)
    unfreeze_vision(model)
    trainable = {n for n, p in model.vision.named_parameters() if p.requires_grad}
    # now let every encoder parameter collect a gradient, to see which do
    for p in model.vision.parameters():
        p.requires_grad_(True)
    inputs = MLLMProcessor(tokenizer, model.num_image_tokens, IMAGE_SIZE)(
        [f"{IMAGE_TOKEN} a"] * 2, images(2))
    model(inputs["input_ids"], inputs["pixel_values"]).logits.square().mean().backward()
    reached = {n for n, p in model.vision.named_parameters()
               if p.grad is not None and p.grad.abs().sum() > 0}
    assert trainable == reached
    assert ("post_layernorm.weight" in trainable) == (layer == -1)
    # -4 of 3 blocks: the patch embeddings
    assert ("layers.0.mlp.fc1.weight" in trainable) == (layer != -4)
    assert {"patch_embed.proj.weight", "position_embedding"} <= trainable
