"""Bad input, as a new user would give it, across the public API: each case must raise an error of
the right type whose message names the problem (and the fix), early, instead of a shape error
from deep inside torch or a silently wrong result. One parametrized test per module."""

import json
import shutil
from functools import cache

import numpy as np
import pytest
import torch
from PIL import Image

from minimllm import chat, cli, data, grading, lm, mllm, projectors, train, vision
from minimllm.tokenizer import IMAGE_TOKEN, train_tokenizer

VIT = dict(image_size=32, patch_size=8, hidden_size=16, num_layers=1, num_heads=2,
           intermediate_size=32)
RGB = np.zeros((32, 32, 3), np.uint8)


@cache
def tokenizer():
    return train_tokenizer(data.text_corpus(n_scenes=60, seed=0), vocab_size=300)


def lm_config(**kw):
    return lm.LMConfig(**{**dict(vocab_size=len(tokenizer()), dim=32, n_layers=2, n_heads=4,
                                 n_kv_heads=2, ffn_dim=64, max_seq_len=96), **kw})


@cache
def tiny_lm():
    torch.manual_seed(0)
    return lm.LanguageModel(lm_config()).eval()


@cache
def tiny_mllm():
    torch.manual_seed(0)
    return mllm.MLLM(mllm.MLLMConfig(vision=vision.ViTConfig(**VIT), lm=lm_config())).eval()


def processor():
    return mllm.MLLMProcessor(tokenizer(), tiny_mllm().num_image_tokens, 32)


def two_prompts(second=f"{IMAGE_TOKEN} hi"):
    return processor()([f"{IMAGE_TOKEN} hi", second], [RGB, RGB])


def scene():
    return data.sample_scene(np.random.default_rng(0))


def check(case, error, match):
    with pytest.raises(error, match=match):
        case()


DATA = {
    "no objects": (lambda: data.sample_scene(np.random.default_rng(0), n_objects=0),
                   ValueError, "min_objects"),
    "image too small": (lambda: data.sample_scene(image_size=0), ValueError, "too small"),
    "render at a negative size": (lambda: data.render_scene(scene(), image_size=-5), ValueError,
                                  "too small"),
    "negative split size": (lambda: data.build_dataset(n_train=-1, n_validation=1, n_test=1,
                                                       n_compositional=1), ValueError, ">= 0"),
    "unknown caption style": (lambda: data.make_caption(scene(), style="poem"), ValueError,
                              "choose from"),
    "unknown question type": (lambda: data.make_questions(scene(), qtypes=["mood"]), ValueError,
                              "choose from"),
    "empty corpus": (lambda: data.text_corpus(n_scenes=0), ValueError, "at least one scene"),
}


@pytest.mark.parametrize("name", DATA)
def test_data(name):
    check(*DATA[name])


IMAGES = {
    "16-bit array": (lambda: vision.to_pixel_values(np.full((32, 32, 3), 60000, np.uint16)),
                     ValueError, "16-bit.*astype"),
    "16-bit PIL image": (lambda: vision.to_pixel_values(
        Image.fromarray(np.full((32, 32), 60000, np.uint16))), ValueError, "16- or 32-bit"),
    "floats in 0-255": (lambda: vision.to_pixel_values(np.full((32, 32, 3), 200.0, np.float32)),
                        ValueError, "divide them by 255"),
    "tensor already normalised": (lambda: vision.to_pixel_values(torch.full((3, 32, 32), -0.5)),
                                  ValueError, "already normalised"),
    "NaN pixels": (lambda: vision.to_pixel_values(np.full((32, 32, 3), np.nan, np.float32)),
                   ValueError, "NaN"),
    "channel-last tensor": (lambda: vision.to_pixel_values(torch.rand(32, 32, 3)), ValueError,
                            r"channel-last.*permute\(2, 0, 1\)"),
    "channel-last batch": (lambda: vision.to_pixel_values(torch.rand(2, 32, 32, 3)), ValueError,
                           r"permute\(0, 3, 1, 2\)"),
    "RGBA array": (lambda: vision.to_pixel_values(np.zeros((32, 32, 4), np.uint8)), ValueError,
                   "4 channels.*convert"),
    "bool array": (lambda: vision.to_pixel_values(np.zeros((32, 32, 3), bool)), TypeError,
                   "dtype bool"),
    "a file name": (lambda: vision.to_pixel_values("scene.png"), TypeError, "PIL.Image.open"),
    "image_size 0": (lambda: vision.to_pixel_values(RGB, image_size=0), ValueError,
                     "positive int"),
    "5-d tensor": (lambda: vision.to_pixel_values(torch.rand(1, 2, 3, 32, 32)), ValueError,
                   r"\(C, H, W\)"),
    "images of two sizes": (lambda: vision.to_pixel_values([RGB, np.zeros((16, 16, 3),
                                                                          np.uint8)]),
                            ValueError, "pass image_size"),
}


@pytest.mark.parametrize("name", IMAGES)
def test_image_conversion(name):
    check(*IMAGES[name])


def encoder():
    torch.manual_seed(0)
    return vision.VisionTransformer(vision.ViTConfig(**VIT)).eval()


VISION = {
    "wrong image size": (lambda: encoder()(torch.zeros(1, 3, 48, 48)), ValueError,
                         "image_size=32"),
    "one channel": (lambda: encoder()(torch.zeros(1, 1, 32, 32)), ValueError, "1 channels"),
    "no batch dimension": (lambda: encoder()(torch.zeros(3, 32, 32)), ValueError, r"x\[None\]"),
    "uint8 pixels": (lambda: encoder()(torch.zeros(1, 3, 32, 32, dtype=torch.uint8)), TypeError,
                     "to_pixel_values"),
    "0-255 float pixels": (lambda: encoder()(torch.full((1, 3, 32, 32), 200.0)), ValueError,
                           "0-255"),
    "NaN pixels": (lambda: encoder()(torch.full((1, 3, 32, 32), float("nan"))), ValueError,
                   "NaN"),
    "zero width": (lambda: vision.ViTConfig(**{**VIT, "hidden_size": 0}), ValueError,
                   "hidden_size must be a positive int"),
    "negative depth": (lambda: vision.ViTConfig(**{**VIT, "num_layers": -1}), ValueError,
                       "num_layers"),
    "patch does not divide": (lambda: vision.ViTConfig(**{**VIT, "patch_size": 5}), ValueError,
                              "not divisible"),
}


@pytest.mark.parametrize("name", VISION)
def test_vision_encoder(name):
    check(*VISION[name])


def prompt(n=3):
    return torch.ones(1, n, dtype=torch.long) * 10


LM = {
    "zero width": (lambda: lm_config(dim=0), ValueError, "dim must be a positive int"),
    "zero heads": (lambda: lm_config(n_heads=0), ValueError, "n_heads must be a positive int"),
    "heads do not divide": (lambda: lm_config(dim=30), ValueError, "divisible by n_heads"),
    "sequence too long": (lambda: tiny_lm()(torch.zeros(1, 200, dtype=torch.long)), ValueError,
                          "longer than the context length"),
    "float token ids": (lambda: tiny_lm()(torch.zeros(1, 5)), TypeError, r"\.long\(\)"),
    "ids outside the vocabulary": (lambda: tiny_lm()(torch.full((1, 5), 5000)), ValueError,
                                   r"must be in \[0,"),
    "ids without a batch dimension": (lambda: tiny_lm()(torch.zeros(5, dtype=torch.long)),
                                      ValueError, r"\(batch, time\)"),
    "temperature < 0": (lambda: lm.generate(tiny_lm(), prompt(), temperature=-1), ValueError,
                        "temperature must be"),
    "temperature NaN": (lambda: lm.generate(tiny_lm(), prompt(), temperature=float("nan")),
                        ValueError, "temperature must be"),
    "top_p 0": (lambda: lm.generate(tiny_lm(), prompt(), temperature=1.0, top_p=0.0),
                ValueError, r"top_p must be in \(0, 1\]"),
    "top_p above 1": (lambda: lm.generate(tiny_lm(), prompt(), temperature=1.0, top_p=1.5),
                      ValueError, r"top_p must be in \(0, 1\]"),
    "top_k < 0": (lambda: lm.generate(tiny_lm(), prompt(), temperature=1.0, top_k=-1),
                  ValueError, "top_k must be"),
    "max_new_tokens < 0": (lambda: lm.generate(tiny_lm(), prompt(), max_new_tokens=-1),
                           ValueError, "max_new_tokens must be"),
    "prompts as a ragged list": (lambda: lm.generate(tiny_lm(), [[1, 5, 6], [1, 5]]), TypeError,
                                 "unequal length"),
    "right-padded prompts": (lambda: lm.generate(tiny_lm(), torch.tensor([[1, 5, 6], [1, 5, 0]])),
                             ValueError, "padded"),
    "a mask with padding": (lambda: lm.generate(tiny_lm(), torch.tensor([[1, 5, 6], [1, 5, 7]]),
                                                attention_mask=torch.tensor([[1, 1, 1],
                                                                             [0, 1, 1]])),
                            ValueError, "padded"),
}


@pytest.mark.parametrize("name", LM)
def test_language_model(name):
    check(*LM[name])


PROJECTORS = {
    "unknown name": (lambda: projectors.build_projector("transformer", 16, 32), ValueError,
                     "choose one of"),
    "M = 0": (lambda: projectors.build_projector("c_abstractor", 16, 32, num_tokens=0,
                                                 n_patches=16), ValueError, "int >= 1"),
    "M not square": (lambda: projectors.build_projector("c_abstractor", 16, 32, num_tokens=5,
                                                        n_patches=16), ValueError, "square"),
    "M for the MLP": (lambda: projectors.build_projector("mlp", 16, 32, num_tokens=4,
                                                         n_patches=16), ValueError, "M = N"),
    "wrong feature width": (lambda: projectors.build_projector("mlp", 16, 32)(torch.rand(1, 16, 8)),
                            ValueError, "d_vision=16"),
    "feature map not flattened": (lambda: projectors.build_projector("mlp", 16, 32)(
        torch.rand(16, 16)), ValueError, "flatten"),
    "zero width": (lambda: projectors.build_projector("mlp", 0, 32), ValueError, "positive"),
}


@pytest.mark.parametrize("name", PROJECTORS)
def test_projectors(name):
    check(*PROJECTORS[name])


def image_split_across_rows():
    inputs = two_prompts()
    ids = inputs["input_ids"].clone()
    first = int((ids[0] == 3).nonzero()[0])
    ids[0, first], ids[1, -1] = 50, 3  # one placeholder moved from row 0 to the end of row 1
    return tiny_mllm()(ids, inputs["pixel_values"])


MLLM = {
    "image split across two rows": (image_split_across_rows, ValueError, "split across two"),
    "more images than placeholders": (lambda: processor()([f"{IMAGE_TOKEN} hi"], [RGB, RGB]),
                                      ValueError, "2 images"),
    "fewer targets than prompts": (lambda: processor()(["a", "b"], targets=["x"]), ValueError,
                                   "one target per prompt"),
    "placeholders without images": (lambda: tiny_mllm()(two_prompts()["input_ids"]), ValueError,
                                    "no pixel_values"),
    "pixels of the wrong size": (lambda: tiny_mllm()(two_prompts()["input_ids"],
                                                     torch.zeros(2, 3, 48, 48)), ValueError,
                                 "resize"),
    "no prompts": (lambda: processor()([]), ValueError, "no prompts"),
    "float pixels in 0-255": (lambda: processor()([f"{IMAGE_TOKEN} hi"],
                                                  torch.full((1, 3, 32, 32), 200.0)),
                              ValueError, "in \\[-1, 1\\].*uint8"),
    "features of one image without the image axis": (
        lambda: mllm.merge_image_features(torch.zeros(1, 4, 16), torch.tensor([[3, 3, 1, 1]]),
                                          torch.zeros(2, 16)), ValueError, r"\(n_images, M, D\)"),
    "unknown projector": (lambda: mllm.MLLMConfig(projector="transformer"), ValueError,
                          "choose one of"),
    "no vision config": (lambda: mllm.MLLMConfig(vision=None), TypeError,
                         "vision must be a ViTConfig or a dict"),
    "an LM config where the vision config goes": (
        lambda: mllm.MLLMConfig(vision=mllm.LMConfig()), TypeError, "vision must be a ViTConfig"),
    "prompts of unequal length": (lambda: tiny_mllm().generate(
        **{k: v for k, v in two_prompts(f"{IMAGE_TOKEN} hello there friend").items()
           if k != "attention_mask"}), ValueError, "unequal length"),
    "unequal length, with the mask": (lambda: tiny_mllm().generate(
        **two_prompts(f"{IMAGE_TOKEN} hello there friend")), ValueError, "unequal length"),
    "sampling at temperature < 0": (lambda: tiny_mllm().generate(
        **{k: v for k, v in two_prompts().items() if k != "attention_mask"}, temperature=-1.0),
        ValueError, "temperature"),
    "a message without content": (lambda: chat.ChatProcessor(tokenizer(), 16, 32)(
        [{"role": "user", "text": "hi"}]), ValueError, "'role' and 'content'"),
    "an unknown role": (lambda: chat.ChatProcessor(tokenizer(), 16, 32)(
        [{"role": "bot", "content": "hi"}]), ValueError, "unknown chat role"),
    "chat with a missing image": (lambda: chat.chat(tiny_mllm(), chat.ChatProcessor(
        tokenizer(), 16, 32), [chat.image_turn("what is it?")], []), ValueError, "0 images"),
}


@pytest.mark.parametrize("name", MLLM)
def test_processor_and_mllm(name):
    check(*MLLM[name])


def test_uint8_pixel_tensors_are_scaled_as_to_pixel_values_scales_them():
    pixels = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    got = processor()([f"{IMAGE_TOKEN} a", f"{IMAGE_TOKEN} b"], pixels)["pixel_values"]
    assert torch.equal(got, vision.to_pixel_values(pixels, image_size=32))
    assert got.min() >= -1 and got.max() <= 1


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved")
    tiny_mllm().save_pretrained(folder / "mllm", tokenizer=tokenizer())
    tiny_lm().save_pretrained(folder / "lm", tokenizer=tokenizer())
    return folder


def altered(saved, name, change):
    """A copy of the saved MLLM with `change(folder)` applied."""
    folder = saved / name
    if not folder.exists():
        shutil.copytree(saved / "mllm", folder)
        change(folder)
    return folder


def edit_config(**edits):
    def change(folder):
        config = json.loads((folder / "config.json").read_text())
        for key, value in edits.items():
            part, _, field = key.rpartition("__")
            (config[part] if part else config)[field] = value
        (folder / "config.json").write_text(json.dumps(config))
    return change


def truncate_weights(folder):
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])


def weights_of(model_name):
    """Replace the weights with another model's file (same config, foreign tensors)."""
    def change(folder):
        shutil.copy(folder.parent / model_name / "model.safetensors", folder / "model.safetensors")
    return change


def strip_version(folder):
    """The weights as a course version 0.1.0 wrote them: no "minimllm" in the metadata."""
    from safetensors.torch import load_file, save_file

    weights = folder / "model.safetensors"
    save_file(load_file(str(weights)), str(weights), metadata={"format": "pt", "model": "MLLM"})



SAVE_LOAD = {
    "weights of another model class": (lambda s: mllm.MLLM.from_pretrained(
        altered(s, "foreign", weights_of("lm"))), ValueError,
        r"saved by minimllm \d.*holds a LanguageModel, not a MLLM"),
    "corrupt weights": (lambda s: mllm.MLLM.from_pretrained(
        altered(s, "corrupt", truncate_weights)), RuntimeError, "corrupt.*save the model again"),
    "config of other sizes": (lambda s: mllm.MLLM.from_pretrained(
        altered(s, "wider", edit_config(lm__dim=64, lm__ffn_dim=128))), ValueError,
        "does not match its config.*lm.embed_tokens.weight"),
    "config of another projector": (lambda s: mllm.MLLM.from_pretrained(
        altered(s, "linear", edit_config(projector="linear"))), ValueError,
        "missing projector.proj.weight"),
    "unknown field in a nested config": (lambda s: mllm.MLLM.from_pretrained(
        altered(s, "field", edit_config(vision__bogus=1))), ValueError,
        "unknown ViTConfig fields"),
    "a nested config that is not one": (lambda s: mllm.MLLM.from_pretrained(
        altered(s, "no-vision", edit_config(vision=None))), ValueError,
        "config.json is not a valid MLLMConfig"),
    "a language model loaded as an MLLM": (lambda s: mllm.MLLM.from_pretrained(s / "lm"),
                                          ValueError, "not a valid MLLMConfig"),
    "a folder that does not exist": (lambda s: mllm.MLLM.from_pretrained(s / "nowhere"),
                                     FileNotFoundError, "not a saved MLLM"),
    "processor from a missing folder": (lambda s: chat.ChatProcessor.from_pretrained(
        s / "nowhere"), FileNotFoundError, "holds no config.json"),
    "processor from a language model": (lambda s: mllm.MLLMProcessor.from_pretrained(s / "lm"),
                                       ValueError, "not the config of a saved MLLM"),
}


@pytest.mark.parametrize("name", SAVE_LOAD)
def test_save_and_load(name, saved):
    case, error, match = SAVE_LOAD[name]
    check(lambda: case(saved), error, match)


def test_an_older_checkpoint_loads_and_a_mismatch_names_its_version(saved):
    old = altered(saved, "old", strip_version)
    assert isinstance(mllm.MLLM.from_pretrained(old, device="cpu"), mllm.MLLM)
    edit_config(lm__dim=64, lm__ffn_dim=128)(old)
    check(lambda: mllm.MLLM.from_pretrained(old), ValueError,
          "saved by minimllm 0.1.0 or older.*another version of the course")


@pytest.mark.parametrize("value", ["tpu", "gpu", "cuda0", ""])
def test_a_device_the_course_does_not_know(value, monkeypatch):
    from minimllm.utils import get_device

    monkeypatch.setenv("MINIMLLM_DEVICE", value)
    if value == "":
        assert get_device().type in ("cpu", "cuda", "mps")  # unset: the best one
    else:
        check(get_device, ValueError, f"MINIMLLM_DEVICE='{value}': use cpu, cuda")
        check(lambda: get_device(value), ValueError, f"device='{value}'")


def regression():
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    return model, lambda step: torch.ones(4, 2), lambda m, b: m(b).pow(2).mean()


def resume_with_fewer_steps(tmp_path):
    model, batches, loss_fn = regression()
    train.train(model, loss_fn, batches, train.TrainConfig(steps=4, device="cpu",
                                                           checkpoint_path=tmp_path))
    train.train(model, loss_fn, batches, train.TrainConfig(steps=2, device="cpu",
                                                           checkpoint_path=tmp_path))


def resume_another_model(tmp_path):
    model, batches, loss_fn = regression()
    train.train(model, loss_fn, batches, train.TrainConfig(steps=2, device="cpu",
                                                           checkpoint_path=tmp_path))
    other = torch.nn.Linear(3, 1)
    train.train(other, lambda m, b: m(torch.ones(4, 3)).sum(), batches,
                train.TrainConfig(steps=3, device="cpu", checkpoint_path=tmp_path))


def checkpoint_among_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    model, batches, loss_fn = regression()
    train.train(model, loss_fn, batches, train.TrainConfig(steps=2, device="cpu",
                                                           checkpoint_path=tmp_path))


TRAINING = {
    "negative gradient clipping": (lambda t: train.TrainConfig(steps=5, grad_clip=-1.0),
                                   ValueError, "negative norm would flip"),
    "negative weight decay": (lambda t: train.TrainConfig(steps=5, weight_decay=-0.1),
                              ValueError, "negative decay"),
    "lr 0": (lambda t: train.TrainConfig(steps=5, lr=0.0), ValueError, "lr must be"),
    "lr NaN": (lambda t: train.TrainConfig(steps=5, lr=float("nan")), ValueError, "lr must be"),
    "negative steps": (lambda t: train.TrainConfig(steps=-1), ValueError, "positive int"),
    "negative seed": (lambda t: train.TrainConfig(steps=5, seed=-1), ValueError, "seed"),
    "no gradient accumulation": (lambda t: train.TrainConfig(steps=5, grad_accum_steps=0),
                                 ValueError, "grad_accum_steps"),
    "resume past the run's steps": (resume_with_fewer_steps, ValueError, "raise steps"),
    "resume another model": (resume_another_model, ValueError, "does not match this model"),
    "a checkpoint folder holding other files": (checkpoint_among_other_files, ValueError,
                                                "new or empty folder"),
}


@pytest.mark.parametrize("name", TRAINING)
def test_training_config_and_resume(name, tmp_path):
    case, error, match = TRAINING[name]
    check(lambda: case(tmp_path), error, match)


def chat_command(tmp_path, image, model):
    return cli.main(["chat", "what is it?", "--image", str(image), "--model", str(model)])


TOOLS = {
    "grade a missing notebook": (lambda t: grading.grade(t / "nope.ipynb"), FileNotFoundError,
                                 "no notebook at"),
    "grade a file that is no notebook": (lambda t: (
        (t / "x.ipynb").write_text("hello"), grading.grade(t / "x.ipynb")), ValueError,
        "not a Jupyter notebook"),
    "cli chat: missing image": (lambda t: chat_command(t, t / "none.png", t), SystemExit,
                                "cannot read the image"),
    "cli chat: not an image": (lambda t: ((t / "x.png").write_text("text"),
                                          chat_command(t, t / "x.png", t)), SystemExit,
                               "give a PNG or JPEG"),
    "cli chat: missing model": (lambda t: (Image.fromarray(RGB).save(t / "i.png"),
                                           chat_command(t, t / "i.png", t / "nowhere")),
                                SystemExit, "holds no config.json"),
    "cli chat: a language model's folder": (
        lambda t: (Image.fromarray(RGB).save(t / "i.png"), tiny_lm().save_pretrained(t / "lm"),
                   chat_command(t, t / "i.png", t / "lm")), SystemExit, "another model"),
    "cli grade: missing notebook": (lambda t: cli.main(["grade", str(t / "nope.ipynb")]),
                                    SystemExit, "no notebook at"),
    "cli export: missing model": (lambda t: cli.main(["export", str(t / "no"), str(t / "o")]),
                                  SystemExit, "holds no config.json"),
    "cli: unknown command": (lambda t: cli.main(["fly"]), SystemExit, "2"),
}


@pytest.mark.parametrize("name", TOOLS)
def test_grader_and_cli(name, tmp_path):
    case, error, match = TOOLS[name]
    check(lambda: case(tmp_path), error, match)
