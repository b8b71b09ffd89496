"""`minimllm export` of the models that transformers has no class for: Method A with the pixel
shuffle, resampler, Q-Former, C-Abstractor or D-Abstractor projector, and Method B (its own
vision encoder, projector and gated cross-attention blocks; NVLM-H too). Each becomes a folder
with custom code (`auto_map`; configuration / modeling / processing files generated from the
package's source) that `AutoModelForImageTextToText` / `AutoProcessor` /
`pipeline("image-text-to-text")` load with `trust_remote_code=True`, with the logits of our model
and the tokens of `minimllm chat`, also in a Python where minimllm cannot be imported. The
shipped reference assistant (C-Abstractor, 9 image tokens) too.

The fresh-venv test (`test_a_fresh_venv_with_only_torch_and_transformers_loads_every_folder`)
builds a venv with only torch, transformers and Pillow the first time (about 2 minutes; cached
in data/cache/export-venv, 1.2 GB): it runs when that venv exists or MINIMLLM_FRESH_VENV=1, and
is skipped otherwise."""

import ast
import inspect
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch

from minimllm import cli, export
from minimllm.chat import END_ID, ChatProcessor, chat, image_turn, load_mllm
from minimllm.data import render_scene, sample_scene, text_corpus
from minimllm.lm import LanguageModel, LMConfig
from minimllm.mllm import MLLM, MLLMConfig
from minimllm.projectors import CAbstractor, DAbstractor, PerceiverResampler, QFormer
from minimllm.tokenizer import EOS_ID, IMAGE_TOKEN_ID, train_tokenizer
from minimllm.views import TwoViewConfig, TwoViewMLLM
from minimllm.vision import ViTConfig, to_pixel_values
from minimllm.xattn import CrossAttentionMLLM, GatedCrossAttention, XAttnConfig

ROOT = Path(__file__).resolve().parents[1]
ASSISTANT = ROOT / "data" / "checkpoints" / "assistant"
FRESH_VENV = ROOT / "data" / "cache" / "export-venv"
VIT = dict(image_size=32, patch_size=8, hidden_size=16, num_layers=2, num_heads=2,
           intermediate_size=32)
# Method A: projector -> M; two views of each image (minimllm.views) with a projector -> M;
# Method B: "cross_attention" (+ NVLM-H's thumbnails)
KINDS = {"pixel_shuffle": 4, "resampler": 4, "qformer": 5, "c_abstractor": 4, "d_abstractor": 9}
TWO_VIEWS = {"two_views_c_abstractor": ("c_abstractor", 4), "two_views_mlp": ("mlp", None)}
METHOD_B = {"cross_attention": 0, "cross_attention_thumbnails": 4}
QUESTION = "what colour is the circle?"
NEW_TOKENS = 8


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(text_corpus(n_scenes=60, seed=0), vocab_size=300)


def lm_config(tokenizer, n_layers: int = 2) -> LMConfig:
    return LMConfig(vocab_size=len(tokenizer), dim=32, n_layers=n_layers, n_heads=4,
                    n_kv_heads=2, ffn_dim=64, max_seq_len=128)


def tiny_model(tokenizer, name: str) -> MLLM:
    """An untrained model: Method A with projector `name`, reading the vision layer before the
    last (so that `vision_feature_layer` is tested too), or Method B (`METHOD_B`) reading the
    encoder's output, with its gates open as after training (else the image would not reach
    the text)."""
    torch.manual_seed(0)
    if name in KINDS:
        return MLLM(MLLMConfig(vision=ViTConfig(**VIT), lm=lm_config(tokenizer), projector=name,
                               num_image_tokens=KINDS[name], vision_feature_layer=-2)).eval()
    if name in TWO_VIEWS:
        projector, m = TWO_VIEWS[name]
        return TwoViewMLLM(TwoViewConfig(vision=ViTConfig(**VIT), lm=lm_config(tokenizer),
                                         projector=projector, num_image_tokens=m,
                                         vision_feature_layer=-2)).eval()
    model = CrossAttentionMLLM(XAttnConfig(vision=ViTConfig(**VIT), num_image_tokens=4,
                                           cross_attention_layers=[0, 2],
                                           num_thumbnail_tokens=METHOD_B[name]),
                               lm=LanguageModel(lm_config(tokenizer, n_layers=3))).eval()
    with torch.no_grad():
        for block in model.cross_attention_blocks():
            block.cross_attn_attn_gate.fill_(0.7)
            block.cross_attn_mlp_gate.fill_(-0.7)
    return model


def scenes(n: int, seed: int = 5, size: int = 48) -> list:
    """`n` Shapes World images drawn at `size` pixels (the processors resize them)."""
    rng = np.random.default_rng(seed)
    return [render_scene(sample_scene(rng, image_size=size)) for _ in range(n)]


@pytest.fixture(scope="module")
def exported(tokenizer, tmp_path_factory):
    """{name: (model, its exported folder)} for every projector family and Method B; Method B
    through `minimllm export` (from a saved model), the others through `save_transformers`."""
    out = {}
    for name in [*KINDS, *TWO_VIEWS, *METHOD_B]:
        model, root = tiny_model(tokenizer, name), tmp_path_factory.mktemp(name)
        if name == "cross_attention":
            model.save_pretrained(root / "model", tokenizer=tokenizer)
            assert cli.main(["export", str(root / "model"), str(root / "hf")]) == 0
            export.generation_config(tokenizer, NEW_TOKENS).save_pretrained(root / "hf")
        else:
            export.save_transformers(model, tokenizer, root / "hf", max_new_tokens=NEW_TOKENS)
        out[name] = model, root / "hf"
    return out


def load(folder):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True,
                                                        local_files_only=True)
    return model.eval(), AutoProcessor.from_pretrained(folder, trust_remote_code=True,
                                                       local_files_only=True)


def messages(image, text: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image", "image": image},
                                         {"type": "text", "text": text}]}]


def reply_tokens(new: list[int]) -> list[int]:
    """The tokens of a reply, up to and with its first stop (`<|end|>` or `</s>`, where
    `ChatProcessor.decode` cuts and transformers' generation config stops)."""
    stops = [new.index(t) for t in (END_ID, EOS_ID) if t in new]
    return new[:min(stops) + 1] if stops else new


def expected_reply(model, tokenizer, image, text: str, max_new_tokens: int) -> tuple[list, str]:
    """(the reply's tokens, its text) from minimllm: `MLLM.generate` and `chat`."""
    processor = ChatProcessor.for_model(model, tokenizer)
    inputs = processor([image_turn(text)], [image], add_generation_prompt=True)
    new = model.generate(inputs["input_ids"], inputs["pixel_values"],
                         max_new_tokens=max_new_tokens, eos_token_id=END_ID)[0].tolist()
    return reply_tokens(new), chat(model, processor, [image_turn(text)], [image],
                                   max_new_tokens=max_new_tokens)[0]


def check_answers_as_chat(model, tokenizer, folder, pairs, max_new_tokens: int) -> float:
    """For each (image, text): the folder's processor makes our inputs (pixels bit for bit), its
    model our logits (returns the largest gap) and, greedy, our tokens; the pipeline our text."""
    from transformers import pipeline

    hf, processor = load(folder)
    pipe = pipeline("image-text-to-text", model=str(folder), trust_remote_code=True)
    ours_processor, gap = ChatProcessor.for_model(model, tokenizer), 0.0
    for image, text in pairs:
        ours = ours_processor([image_turn(text)], [image], add_generation_prompt=True)
        theirs = processor.apply_chat_template(messages(image, text), tokenize=True,
                                               add_generation_prompt=True, return_dict=True,
                                               return_tensors="pt")
        assert torch.equal(theirs["input_ids"], ours["input_ids"])
        assert (theirs["input_ids"] == IMAGE_TOKEN_ID).sum() == model.tokens_per_image
        assert torch.equal(theirs["pixel_values"], ours["pixel_values"])  # bit for bit
        with torch.no_grad():
            gap = max(gap, (model(ours["input_ids"], ours["pixel_values"]).logits
                            - hf(**theirs).logits).abs().max().item())
        new_theirs = hf.generate(**theirs)[0, ours["input_ids"].shape[1]:].tolist()
        tokens, text_ours = expected_reply(model, tokenizer, image, text, max_new_tokens)
        assert new_theirs == tokens
        reply = pipe(text=messages(image, text), return_full_text=False)[0]["generated_text"]
        assert reply.strip() == text_ours  # `chat` trims a reply's outer whitespace
    assert gap <= 1e-4
    return gap


@pytest.mark.parametrize("name", [*sorted(KINDS), *TWO_VIEWS, *METHOD_B])
def test_every_model_family_exports_with_custom_code_and_answers_as_chat(exported, tokenizer,
                                                                         name):
    model, folder = exported[name]
    hf, processor = load(folder)
    method_b = name in METHOD_B
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"] == (export.CROSS_ATTENTION_AUTO_MAP if method_b
                                  else export.AUTO_MAP)
    assert type(hf).__name__ == ("MiniMLLMCrossAttentionForConditionalGeneration" if method_b
                                 else "MiniMLLMForConditionalGeneration")
    assert type(processor).__name__ == "MiniMLLMProcessor"
    projector = hf.projector if method_b else hf.model.multi_modal_projector
    assert type(projector).__name__ == type(model.projector).__name__
    assert processor.image_seq_length == model.tokens_per_image
    if method_b:
        assert sum(type(m).__name__ == "GatedCrossAttention" for m in hf.modules()) == 2

    # the same logits: two prompts (text first, as after `<s>`), the second with two images
    g = torch.Generator().manual_seed(1)
    k = model.tokens_per_image
    ids = torch.randint(10, len(tokenizer), (2, 3 + 2 * k + 8), generator=g)
    ids[:, 3:3 + k] = IMAGE_TOKEN_ID
    ids[1, -k:] = IMAGE_TOKEN_ID
    pixels = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1
    with torch.no_grad():
        ours, theirs = model(ids, pixels).logits, hf(input_ids=ids, pixel_values=pixels).logits
        blind = hf(input_ids=ids, pixel_values=-pixels).logits
    assert (ours - theirs).abs().max() <= 1e-4
    assert (blind - theirs).abs().max() > 1e-3  # the image does reach the text

    # the same inputs and the same greedy tokens as `minimllm chat`, from an image and a question
    check_answers_as_chat(model, tokenizer, folder, [(scenes(1)[0], QUESTION)], NEW_TOKENS)


@pytest.fixture(scope="module")
def exported_assistant(tmp_path_factory):
    """The shipped reference assistant (two views, C-Abstractor, 2 x 9 image tokens, 64-pixel
    images), exported with `minimllm export`."""
    out = tmp_path_factory.mktemp("assistant") / "hf"
    assert cli.main(["export", str(ASSISTANT), str(out)]) == 0
    return out


def assistant_questions() -> list[tuple]:
    """(image, question + the assistant's format prompt) on held-out scenes, several types."""
    questions = ["what colour is the circle?", "how many objects are there?",
                 "is there a red square?", "where is the star?"]
    suffix = cli.trained_format_prompt(ASSISTANT)
    return [(image, q + suffix) for image, q in zip(scenes(len(questions), seed=11, size=96),
                                                    questions)]


def test_the_shipped_assistant_exports_and_answers_with_the_tokens_of_chat(exported_assistant,
                                                                            tmp_path, capsys):
    model, processor = load_mllm(ASSISTANT, device="cpu")
    tokenizer = processor.tokenizer
    assert type(model).__name__ == "TwoViewMLLM" and model.projector.kind == "c_abstractor"
    assert model.tokens_per_image == 18  # two views of M = 9
    _, processor = load(exported_assistant)
    assert processor.format_prompt == cli.trained_format_prompt(ASSISTANT) != ""
    pairs = assistant_questions()
    check_answers_as_chat(model, tokenizer, exported_assistant, pairs, max_new_tokens=96)
    # and `minimllm chat` itself, on a PNG file
    image, text = pairs[-1]
    image.save(tmp_path / "scene.png")
    question = text.removesuffix(processor.format_prompt)
    assert cli.main(["chat", question, "--image", str(tmp_path / "scene.png"),
                     "--model", str(ASSISTANT)]) == 0
    reply = capsys.readouterr().out.strip()
    assert reply and reply == expected_reply(model, tokenizer, image, text, 96)[1]


# What a user's machine does with the folders: load each, answer one question (JSON on stdout).
USER_SCRIPT = r"""
import json, sys
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor, pipeline

try:
    import minimllm  # noqa: F401
    importable = True
except ImportError:
    importable = False
results = []
for case in json.loads(open(sys.argv[1]).read()):
    model = AutoModelForImageTextToText.from_pretrained(case["folder"], trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(case["folder"], trust_remote_code=True)
    image = Image.open(case["image"])
    messages = [{"role": "user", "content": [{"type": "image", "image": image},
                                             {"type": "text", "text": case["text"]}]}]
    inputs = processor.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
                                           return_dict=True, return_tensors="pt")
    new = model.generate(**inputs)[0, inputs["input_ids"].shape[1]:].tolist()
    pipe = pipeline("image-text-to-text", model=case["folder"], trust_remote_code=True)
    reply = pipe(text=messages, return_full_text=False)[0]["generated_text"]
    results.append({"model": type(model).__name__, "processor": type(processor).__name__,
                    "new": new, "reply": reply})
print(json.dumps({"minimllm_importable": importable, "results": results}))
"""


def check_elsewhere(python: list[str], exported, exported_assistant, tokenizer, tmp_path):
    """Run `USER_SCRIPT` with `python` on every exported folder (each family, Method B, the
    shipped assistant), offline, from a folder outside the repository, with an empty module
    cache for transformers' remote code; each answer must be minimllm's. Returns whether
    minimllm was importable there."""
    image, assistant_text = assistant_questions()[0]
    image.save(tmp_path / "scene.png")
    cases, expected = [], []
    for model, folder in exported.values():
        cases.append({"folder": str(folder), "image": str(tmp_path / "scene.png"),
                      "text": QUESTION})
        expected.append(expected_reply(model, tokenizer, image, QUESTION, NEW_TOKENS))
    model, assistant_processor = load_mllm(ASSISTANT, device="cpu")
    assistant_tokenizer = assistant_processor.tokenizer
    cases.append({"folder": str(exported_assistant), "image": str(tmp_path / "scene.png"),
                  "text": assistant_text})
    expected.append(expected_reply(model, assistant_tokenizer, image, assistant_text, 96))
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "check.py").write_text(USER_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(HF_HOME=str(tmp_path / "hf_home"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               OMP_NUM_THREADS="1")
    done = subprocess.run([*python, str(tmp_path / "user" / "check.py"),
                           str(tmp_path / "cases.json")], cwd=tmp_path / "user", env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    for case, result, (tokens, text) in zip(cases, out["results"], expected):
        assert result["processor"] == "MiniMLLMProcessor", case
        assert result["new"] == tokens, case
        assert result["reply"].strip() == text, case
    assert len(out["results"]) == len(cases) == len(KINDS) + len(TWO_VIEWS) + len(METHOD_B) + 1
    return out["minimllm_importable"]


def test_the_folders_load_in_a_python_that_cannot_import_minimllm(exported, exported_assistant,
                                                                  tokenizer, tmp_path):
    # this venv's torch and transformers, but neither the .pth files of its site-packages (the
    # editable install of minimllm) nor the repository on the path: `import minimllm` fails
    paths = sorted({sysconfig.get_paths()[k] for k in ("purelib", "platlib")})
    python = [sys.executable, "-I", "-S", "-c",
              f"import runpy, sys; sys.path += {paths!r}; sys.argv = sys.argv[1:]; "
              "runpy.run_path(sys.argv[0], run_name='__main__')"]
    assert check_elsewhere(python, exported, exported_assistant, tokenizer, tmp_path) is False


@pytest.mark.skipif(not (FRESH_VENV / "bin" / "python").exists()
                    and os.environ.get("MINIMLLM_FRESH_VENV") != "1",
                    reason="slow the first time (builds a venv with only torch, transformers "
                           "and Pillow, ~2 min, cached in data/cache/export-venv): set "
                           "MINIMLLM_FRESH_VENV=1")
def test_a_fresh_venv_with_only_torch_and_transformers_loads_every_folder(
        exported, exported_assistant, tokenizer, tmp_path):
    import transformers

    python = FRESH_VENV / "bin" / "python"
    if not python.exists():  # torch from the local wheel pip finds, as the Makefile installs it
        subprocess.run([sys.executable, "-m", "venv", str(FRESH_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q",
                        f"torch=={torch.__version__.split('+')[0]}",
                        f"transformers=={transformers.__version__}", "pillow"], check=True,
                       timeout=900)
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format=json"],
                            capture_output=True, text=True, check=True).stdout
    assert "minimllm" not in {p["name"].lower() for p in json.loads(listed)}
    assert check_elsewhere([str(python)], exported, exported_assistant, tokenizer,
                           tmp_path) is False


def test_the_custom_code_is_generated_from_the_package_source():
    files = export.remote_code()
    assert set(files) == {"configuration_minimllm.py", "modeling_minimllm.py",
                          "processing_minimllm.py"}
    assert files == export.remote_code()  # deterministic
    for name, text in files.items():
        tree = ast.parse(text)
        imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                    if isinstance(node, ast.Import) for alias in node.names}
        imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and not node.level}
        # (PIL: inside to_pixel_values, for images)
        assert imported <= {"math", "dataclasses", "numpy", "torch", "transformers", "PIL"}, name
        assert "Do not edit" in " ".join(text.split())
    # one source of truth: the package's own code, copied, not a second version of it
    for cls in (CAbstractor, DAbstractor, PerceiverResampler, QFormer, GatedCrossAttention):
        assert inspect.getsource(cls) in files["modeling_minimllm.py"]
    assert inspect.getsource(to_pixel_values) in files["processing_minimllm.py"]
    assert inspect.getsource(export.MiniMLLMProcessor) in files["processing_minimllm.py"]
    for auto_map in (export.AUTO_MAP, export.CROSS_ATTENTION_AUTO_MAP,
                     export.PROCESSOR_AUTO_MAP, export.IMAGE_PROCESSOR_AUTO_MAP):
        for ref in auto_map.values():
            module, cls = ref.split(".")
            assert f"\nclass {cls}(" in files[f"{module}.py"]


def test_bad_input_gets_a_clear_error(exported, tokenizer, tmp_path):
    from PIL import Image
    from transformers import AutoModelForImageTextToText

    model, folder = exported["c_abstractor"]
    with pytest.raises(ValueError, match="trust_remote_code"):
        AutoModelForImageTextToText.from_pretrained(folder, local_files_only=True)
    hf, processor = load(folder)
    with pytest.raises(ValueError, match="number of <image> tokens"):  # 1 placeholder, 2 images
        processor(text=["<image> hi"], images=scenes(2))
    with pytest.raises(ValueError, match="16- or 32-bit"):  # minimllm's own pixel checks travel
        processor(text=["<image> hi"], images=[Image.new("I;16", (8, 8))])
    with pytest.raises(ValueError, match="max_new_tokens"):
        export.save_transformers(model, tokenizer, tmp_path / "bad", max_new_tokens=0)
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match="expected a course MLLM"):
        export.to_transformers(model.lm)
    b_model, b_folder = exported["cross_attention"]
    b_hf, _ = load(b_folder)
    ids = torch.tensor([[5, IMAGE_TOKEN_ID, 6]])
    with pytest.raises(ValueError, match="no pixel_values"):
        b_hf(input_ids=ids)
