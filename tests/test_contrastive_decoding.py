"""scripts/contrastive_decoding.py: visual contrastive decoding is greedy decoding when alpha is
0 or the contrast image is the image itself, and moves the choice toward what the image, not
the prior, supports."""

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from contrastive_decoding import contrastive_generate, contrastive_logits  # noqa: E402

from minimllm.data import render_scene, sample_scene, text_corpus  # noqa: E402
from minimllm.lm import LMConfig  # noqa: E402
from minimllm.mllm import MLLM, MLLMConfig, MLLMProcessor  # noqa: E402
from minimllm.tokenizer import IMAGE_TOKEN, train_tokenizer  # noqa: E402
from minimllm.vision import ViTConfig  # noqa: E402


def test_the_contrast_favours_what_the_image_supports_among_plausible_tokens():
    real = torch.tensor([[2.0, 1.5, -5.0]]).log_softmax(-1)   # image: token 0, then 1
    blind = torch.tensor([[3.0, -2.0, 4.0]]).log_softmax(-1)  # prior: 2, then 0; 1 unlikely
    out = contrastive_logits(real, blind, alpha=1.0, beta=0.1)
    assert out.argmax(-1).item() == 1      # supported by the image, not by the prior
    assert out[0, 2] == float("-inf")      # the prior's favourite is implausible given the image
    assert contrastive_logits(real, blind, 0.0, 0.0).argmax(-1).item() == 0  # alpha 0: greedy


def tiny_model():
    tok = train_tokenizer(text_corpus(n_scenes=60, seed=0), vocab_size=300)
    torch.manual_seed(0)
    vit = ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_layers=1, num_heads=2,
                    intermediate_size=32)
    lm = LMConfig(vocab_size=len(tok), dim=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=64,
                  max_seq_len=96)
    return MLLM(MLLMConfig(vision=vit, lm=lm, projector="mlp")).eval(), tok


def test_without_contrast_it_decodes_as_generate_does():
    model, tok = tiny_model()
    rng = np.random.default_rng(0)
    images = [render_scene(sample_scene(rng, image_size=32)) for _ in range(3)]
    batch = MLLMProcessor(tok, model.num_image_tokens, image_size=32)(
        [f"{IMAGE_TOKEN} describe."] * 3, images)
    ids, pixels = batch["input_ids"], batch["pixel_values"]
    greedy = model.generate(ids, pixels, max_new_tokens=12, eos_token_id=None)
    for alpha, blank in ((0.0, torch.zeros(3, 32, 32)), (1.0, pixels[0])):
        vcd = contrastive_generate(model, blank, alpha, beta=0.0)
        same = vcd(ids[:1], pixels[:1], max_new_tokens=12) if alpha else vcd(
            ids, pixels, max_new_tokens=12)
        assert torch.equal(same, greedy[:len(same)])  # contrast image = the image: no contrast
