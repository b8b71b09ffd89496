"""Property-based tests of the MLLM's processor (chapter 05's mllm.py): images in any accepted
form become pixel values in [-1, 1] of the processor's size, and prompts and images that do
not match are refused by name."""
import functools

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from test_properties import call_rejects, seeds

from minimllm.data import render_scene, sample_scene, text_corpus
from minimllm.mllm import MLLMProcessor, merge_image_features
from minimllm.tokenizer import IMAGE_TOKEN, train_tokenizer

M, S = 4, 32


@functools.cache
def processor() -> MLLMProcessor:
    return MLLMProcessor(train_tokenizer(text_corpus(n_scenes=50, seed=0), vocab_size=300), M, S)


def as_form(image, form: str):
    """One PIL image as the processor may receive it."""
    if form == "pil":
        return image
    if form == "grey":
        return image.convert("L")
    array = np.array(image.convert("RGB"))
    if form == "uint8 array":
        return array
    if form == "float array":
        return array / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)  # "uint8 tensor" (3, H, W)


@given(st.lists(seeds, min_size=1, max_size=3),
       st.sampled_from(["pil", "grey", "uint8 array", "float array", "uint8 tensor"]),
       st.integers(24, 80))
def test_images_in_any_form_become_pixel_values_in_range(scene_seeds, form, size):
    images = [as_form(render_scene(sample_scene(s), image_size=size), form) for s in scene_seeds]
    prompts = [f"{IMAGE_TOKEN} what is in the image?"] * len(images)
    out = processor()(prompts, images)
    pv = out["pixel_values"]
    assert pv.shape == (len(images), 3, S, S) and pv.dtype == torch.float32
    assert pv.min() >= -1.0 and pv.max() <= 1.0 and torch.isfinite(pv).all()
    assert out["input_ids"].shape[0] == len(prompts)


@given(st.integers(0, 3), st.integers(0, 3))
def test_placeholders_and_images_must_match(n_placeholders, n_images):
    if n_placeholders == n_images:
        return
    image = render_scene(sample_scene(0), image_size=S)
    prompt = " ".join([IMAGE_TOKEN] * n_placeholders + ["hello"])
    call_rejects(lambda: processor()([prompt], [image] * n_images or None), (IMAGE_TOKEN,))


@given(st.sampled_from([(5, 8), (1, 2, 3, 8), (2, 0, 8)]))
def test_image_features_of_the_wrong_shape_are_refused(shape):
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    call_rejects(lambda: merge_image_features(torch.zeros(1, 5, 8), torch.zeros(shape), ids, 3),
                 ("image_features",))
