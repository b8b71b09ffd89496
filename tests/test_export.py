"""`minimllm export`: a trained Method-A model becomes a transformers folder that
`pipeline("image-text-to-text")` and `AutoModelForImageTextToText` + `AutoProcessor` load offline
and that answers exactly as `minimllm chat` (same tokens, greedy); a Method-B model's language
model becomes Mllama's with the same logits. (Projectors without a LLaVA equivalent, and Method B
with its own encoder and projector: test_export_remote.py.)"""

import numpy as np
import pytest
import torch

from minimllm import cli, xattn
from minimllm.chat import END_ID, ChatProcessor, image_turn
from minimllm.data import render_scene, sample_scene, text_corpus
from minimllm.lm import LanguageModel, LMConfig
from minimllm.mllm import MLLM, MLLMConfig, configure_stage
from minimllm.tokenizer import EOS_ID, IMAGE_TOKEN_ID, train_tokenizer
from minimllm.vision import ViTConfig
from minimllm.xattn import CrossAttentionMLLM, XAttnConfig, mllama_text_inputs

VIT = dict(image_size=32, patch_size=8, hidden_size=16, num_layers=1, num_heads=2,
           intermediate_size=32)
QUESTION = "what colour is the circle?"


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(text_corpus(n_scenes=60, seed=0), vocab_size=300)


def lm_config(tokenizer, n_layers=2):
    return LMConfig(vocab_size=len(tokenizer), dim=32, n_layers=n_layers, n_heads=4, n_kv_heads=2,
                    ffn_dim=64, max_seq_len=128)


def pictures():
    """Two one-object scenes of different colours, drawn at 48 pixels (the processors resize them
    to the encoder's 32)."""
    rng = np.random.default_rng(5)
    scenes = [sample_scene(rng, n_objects=1, image_size=48) for _ in range(2)]
    while scenes[1]["objects"][0]["color"] == scenes[0]["objects"][0]["color"]:
        scenes[1] = sample_scene(rng, n_objects=1, image_size=48)
    return [render_scene(s) for s in scenes], [s["objects"][0]["color"] for s in scenes]


@pytest.fixture(scope="module")
def assistant(tokenizer, tmp_path_factory):
    """A tiny assistant (MLP projector) taught to name the colour of the object in two images,
    saved as `minimllm chat` reads it."""
    torch.manual_seed(0)
    model = configure_stage(MLLM(MLLMConfig(vision=ViTConfig(**VIT), lm=lm_config(tokenizer))), 2)
    processor = ChatProcessor(tokenizer, model.num_image_tokens, 32)
    images, colours = pictures()
    # the second answer ends as a model's may: with `</s>` before `<|end|>` (`minimllm chat` cuts
    # the reply at either; the exported generation config stops at either)
    answers = [colours[0], f"{colours[1]}{tokenizer.eos_token}"]
    batch = processor([[image_turn(QUESTION), {"role": "assistant", "content": a}]
                       for a in answers], images)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model trains faster on one thread (see conftest)
    for _ in range(150):
        loss = model(batch["input_ids"], batch["pixel_values"], labels=batch["labels"]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.set_num_threads(threads)
    model.eval()
    path = tmp_path_factory.mktemp("assistant") / "model"
    model.save_pretrained(path, tokenizer=tokenizer)
    return model, processor, path, images, colours


def test_pipeline_and_auto_classes_answer_with_the_same_tokens_as_minimllm_chat(
        assistant, tmp_path, capsys):
    from transformers import AutoModelForImageTextToText, AutoProcessor, pipeline

    model, processor, path, images, colours = assistant
    out = tmp_path / "hf"
    assert cli.main(["export", str(path), str(out)]) == 0
    printed = capsys.readouterr()
    assert "LlavaForConditionalGeneration" in printed.out
    assert "export: 100%" in printed.err  # its progress bar
    hf = AutoModelForImageTextToText.from_pretrained(out, local_files_only=True)
    hf_processor = AutoProcessor.from_pretrained(out, local_files_only=True)
    pipe = pipeline("image-text-to-text", model=str(out))
    assert type(hf).__name__ == "LlavaForConditionalGeneration"
    assert type(hf_processor).__name__ == "LlavaProcessor"
    for image, colour in zip(images, colours):
        image.save(tmp_path / "image.png")
        assert cli.main(["chat", QUESTION, "--image", str(tmp_path / "image.png"),
                         "--model", str(path)]) == 0
        chat_reply = capsys.readouterr().out.strip()
        assert chat_reply == colour  # the model learned its two answers
        # the same tokens: our processor and generate against transformers' processor and generate
        ours = processor([image_turn(QUESTION)], [image], add_generation_prompt=True)
        messages = [{"role": "user", "content": [{"type": "image", "image": image},
                                                 {"type": "text", "text": QUESTION}]}]
        theirs = hf_processor.apply_chat_template(messages, add_generation_prompt=True,
                                                  tokenize=True, return_dict=True,
                                                  return_tensors="pt")
        assert torch.equal(theirs["input_ids"], ours["input_ids"])
        assert torch.allclose(theirs["pixel_values"], ours["pixel_values"], atol=1e-6)
        new_ours = model.generate(ours["input_ids"], ours["pixel_values"],
                                  eos_token_id=END_ID)[0].tolist()
        new_theirs = hf.generate(**theirs)[0, ours["input_ids"].shape[1]:].tolist()
        # the reply is the tokens up to the first stop (`ChatProcessor.decode` cuts there)
        stop = min(new_ours.index(t) for t in (END_ID, EOS_ID) if t in new_ours)
        assert stop > 0 and new_theirs == new_ours[:stop + 1]
        # the pipeline, from the chat messages, gives the chat command's text
        reply = pipe(text=messages, return_full_text=False)[0]["generated_text"]
        assert reply == chat_reply


def test_a_folder_without_a_model_is_refused_by_name(tmp_path):
    # (projectors without a LLaVA equivalent export with custom code: test_export_remote.py)
    with pytest.raises(SystemExit, match="holds no config.json"):
        cli.main(["export", str(tmp_path / "nowhere"), str(tmp_path / "hf")])
    assert not (tmp_path / "hf").exists()


def test_method_b_exports_to_mllama_with_the_same_logits(tokenizer, tmp_path):
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(0)
    lm = LanguageModel(lm_config(tokenizer, n_layers=3))
    model = CrossAttentionMLLM(XAttnConfig(vision=ViTConfig(**VIT), num_image_tokens=4,
                                           cross_attention_layers=[1, 2]), lm=lm).eval()
    with torch.no_grad():  # open gates, as after training, so that the image reaches the text
        for block in model.cross_attention_blocks():
            block.cross_attn_attn_gate.fill_(0.7)
            block.cross_attn_mlp_gate.fill_(-0.7)
    # (`minimllm export` writes Method B with its own encoder and projector instead:
    # test_export_remote.py; Mllama carries the language model over)
    xattn.save_transformers(model, tokenizer, tmp_path / "hf")
    hf = AutoModelForImageTextToText.from_pretrained(tmp_path / "hf", local_files_only=True)
    assert type(hf).__name__ == "MllamaForConditionalGeneration"
    ids = torch.randint(10, len(tokenizer), (2, 10), generator=torch.Generator().manual_seed(1))
    ids[:, 0] = IMAGE_TOKEN_ID                                # the image first (see chapter 06)
    pixels = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        ours = model(ids, pixels).logits
        hidden = hf.model.language_model(**mllama_text_inputs(model, ids, pixels))
        theirs = hf.lm_head(hidden.last_hidden_state)
        blind = hf.lm_head(hf.model.language_model(
            **mllama_text_inputs(model, ids, -pixels)).last_hidden_state)
    assert ((theirs - ours).norm() / ours.norm()).item() < 1e-5
    assert (blind - theirs).abs().max() > 1e-3               # the image does reach the logits
