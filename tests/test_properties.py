"""Property-based tests (Hypothesis) of the public API that takes user data: valid input gives a
result of the documented shape and range; invalid input raises ValueError / TypeError from
minimllm's own code, with a message that names the argument. Never an error from inside torch,
PIL or numpy, and never a silent result.

The suite runs a small example budget; `make fuzz` runs a large one (HYPOTHESIS_PROFILE=fuzz).
Here: data (scenes, rendering, questions, the corpus) and lm (token ids, labels, the corpus
tokens). test_properties_vision.py (vision, contrastive) and test_properties_projectors.py
import the helpers below."""

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

import minimllm
from minimllm.data import (
    COLORS,
    MIN_IMAGE_SIZE,
    POSITIONS,
    QTYPES,
    SHAPES,
    caption_questions,
    check_scene,
    make_caption,
    make_questions,
    render_scene,
    sample_scene,
    text_corpus,
)
from minimllm.lm import LanguageModel, LMConfig, tokenize_corpus

PACKAGE = Path(minimllm.__file__).parent


def raised_by_minimllm(excinfo, *words: str) -> None:
    """The error was raised in minimllm's own code and its message names each of `words`."""
    last = excinfo.traceback[-1]
    assert Path(str(last.path)).parent == PACKAGE, (
        f"{excinfo.typename} raised inside {last.path}, not by minimllm: {excinfo.value}")
    for word in words:
        assert word in str(excinfo.value), f"{word!r} not named in: {excinfo.value}"


def call_rejects(fn, words=(), errors=(ValueError, TypeError)):
    with pytest.raises(errors) as excinfo:
        fn()
    raised_by_minimllm(excinfo, *words)


seeds = st.integers(0, 2**32 - 1)
sizes = st.integers(MIN_IMAGE_SIZE, 96)
pairs = st.tuples(st.sampled_from(COLORS), st.sampled_from(SHAPES))


# --- scenes -------------------------------------------------------------------------------

@given(seed=seeds, lo=st.integers(1, 9), extra=st.integers(0, 8), size=sizes,
       defect_prob=st.floats(0, 1), excluded=st.lists(pairs, max_size=6))
def test_valid_scenes_are_what_they_say(seed, lo, extra, size, defect_prob, excluded):
    hi = min(lo + extra, len(POSITIONS))
    scene = sample_scene(seed, min_objects=lo, max_objects=hi, image_size=size,
                         defect_prob=defect_prob, exclude_pairs=excluded)
    assert check_scene(scene, drawn=True) is scene
    objs = scene["objects"]
    assert lo <= len(objs) <= hi
    assert len({o["position"] for o in objs}) == len(objs)  # distinct cells
    assert not {(o["color"], o["shape"]) for o in objs} & set(excluded)
    for d in scene["defects"] or []:
        assert 0 <= d["object"] < len(objs)


@given(seed=seeds, size=st.integers(-50, 200) | st.floats(-1, 100) | st.booleans()
       | st.just(None))
def test_render_scene_draws_the_size_asked_or_refuses(seed, size):
    scene = sample_scene(seed, image_size=32)
    valid = (isinstance(size, int) and not isinstance(size, bool) and size >= MIN_IMAGE_SIZE)
    if size is None or valid:
        image = render_scene(scene, size)
        want = 32 if size is None else size
        assert image.size == (want, want) and image.mode == "RGB"
    else:
        call_rejects(lambda: render_scene(scene, size), ["image_size"])


@given(data=st.data())
def test_bad_sample_scene_settings_are_refused_by_name(data):
    name, value = data.draw(st.sampled_from([
        ("image_size", 0), ("image_size", MIN_IMAGE_SIZE - 1), ("image_size", 40.5),
        ("min_objects", 0), ("max_objects", 10), ("noise", -1.0), ("defect_prob", 1.5),
        ("defect_prob", -0.1), ("background", "stripes"), ("colors", ["mauve"]),
        ("shapes", ["blob"]), ("sizes", ["huge"]), ("exclude_pairs", [("red",)]),
        ("rng", "seven"),
    ]))
    named = {"colors": "colour", "shapes": "shape", "sizes": "size", "exclude_pairs": "pair"}
    call_rejects(lambda: sample_scene(**{"rng": 0, name: value}), [named.get(name, name)])


@given(pair=pairs)
def test_a_pair_both_required_and_excluded_is_refused(pair):
    call_rejects(lambda: sample_scene(0, require_pairs=[pair], exclude_pairs=[pair]),
                 ["require_pairs", "exclude_pairs"])


def _broken_scenes(scene):
    obj = scene["objects"][0]
    yield "not a dict", ["objects"]
    yield {**scene, "objects": []}, ["objects"]
    yield {k: v for k, v in scene.items() if k != "objects"}, ["objects"]
    for key in ("shape", "color", "size", "position"):
        yield {**scene, "objects": [{k: v for k, v in obj.items() if k != key}]}, [key]
        yield {**scene, "objects": [{**obj, key: "plaid"}]}, [key, "plaid"]
    yield {**scene, "defects": [{"kind": "crack", "object": 5}]}, ["defect"]


@given(seed=seeds, k=st.integers(0, 11))
def test_broken_scenes_are_refused_by_every_reader(seed, k):
    scene = sample_scene(seed, n_objects=1)
    broken, words = list(_broken_scenes(scene))[k]
    for fn in (lambda: check_scene(broken), lambda: render_scene(broken),
               lambda: make_caption(broken, 0), lambda: make_questions(broken, 0),
               lambda: caption_questions(broken, 0)):
        call_rejects(fn, words if isinstance(broken, dict) else [])


# --- questions and the corpus -------------------------------------------------------------

@given(seed=seeds, qtypes=st.lists(st.sampled_from(QTYPES), min_size=1, unique=True),
       phrasings=st.sampled_from(["train", "heldout"]))
def test_questions_are_strings_of_the_types_asked(seed, qtypes, phrasings):
    scene = sample_scene(seed, defect_prob=0.5)
    for q in make_questions(scene, seed, qtypes, phrasings=phrasings):
        assert q["qtype"] in qtypes
        assert isinstance(q["question"], str) and q["question"][-1] in "?."
        assert isinstance(q["answer"], str) and q["answer"]


@given(seed=seeds, n=st.integers(1, 9), focus=st.integers(-3, 12))
def test_focus_must_name_an_object(seed, n, focus):
    scene = sample_scene(seed, n_objects=n)
    if 0 <= focus < n:
        assert make_questions(scene, seed, ["color"], focus=focus)
    else:
        call_rejects(lambda: make_questions(scene, seed, focus=focus), ["focus"])


@given(seed=seeds, rounds=st.dictionaries(st.sampled_from(QTYPES), st.integers(0, 3)))
def test_rounds_per_type_ask_that_many_at_most(seed, rounds):
    scene = sample_scene(seed, n_objects=3)
    _, questions = caption_questions(scene, seed, "positions", rounds=rounds)
    for qtype in QTYPES:
        assert sum(q["qtype"] == qtype for q in questions) <= rounds.get(qtype, 1)


@given(bad=st.sampled_from([{"colour": 2}, {"relation": -1}, {"relation": 1.5}, -1]))
def test_bad_rounds_are_refused(bad):
    call_rejects(lambda: caption_questions(sample_scene(0), 0, rounds=bad))


@given(n=st.integers(-3, 0) | st.floats(0, 5) | st.text(max_size=2),
       placed=st.floats(1.01, 9) | st.floats(-9, -0.01))
def test_text_corpus_refuses_bad_settings(n, placed):
    call_rejects(lambda: text_corpus(n), ["n_scenes"])
    call_rejects(lambda: text_corpus(2, placed=placed), ["placed"])


# --- token ids, labels and the LM ---------------------------------------------------------

V = 50
LM = LanguageModel(LMConfig(vocab_size=V, dim=16, n_layers=1, n_heads=2, n_kv_heads=1,
                            ffn_dim=32, max_seq_len=32))


@given(b=st.integers(1, 3), t=st.integers(1, 32), seed=seeds)
def test_the_lm_maps_valid_ids_to_finite_logits(b, t, seed):
    ids = torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))
    out = LM(ids, labels=ids)
    assert out.logits.shape == (b, t, V) and torch.isfinite(out.logits).all()
    assert torch.isfinite(out.loss) or t == 1  # one token has no next-token target


@given(b=st.integers(1, 3), t=st.integers(1, 8), bad=st.integers(-10**6, -1)
       | st.integers(V, 10**6), where=st.sampled_from(["input_ids", "labels"]))
def test_out_of_range_ids_are_refused_by_name(b, t, bad, where):
    ids = torch.zeros(b, t, dtype=torch.long)
    broken = ids.clone()
    broken[-1, -1] = bad
    assume(not (where == "labels" and bad == -100))  # -100: the ignored label
    kwargs = {"input_ids": broken} if where == "input_ids" else {"input_ids": ids,
                                                                  "labels": broken}
    call_rejects(lambda: LM(**kwargs), [where])


@given(shape=st.sampled_from([(0,), (1, 0), (0, 3), (2, 3, 4), ()]),
       dtype=st.sampled_from([torch.long, torch.float32, torch.bool]))
def test_empty_or_misshaped_or_float_input_is_refused(shape, dtype):
    ids = torch.zeros(shape, dtype=dtype)
    call_rejects(lambda: LM(ids), ["input_ids"])


@given(t=st.integers(1, 6), dt=st.integers(-3, 3).filter(bool))
def test_labels_of_another_length_are_refused(t, dt):
    ids = torch.zeros(1, t, dtype=torch.long)
    labels = torch.zeros(1, max(0, t + dt), dtype=torch.long)
    call_rejects(lambda: LM(ids, labels=labels), ["labels"])


@functools.cache
def small_tokenizer():
    from minimllm.tokenizer import train_tokenizer

    return train_tokenizer(["a b c x y z . ?"] * 4, vocab_size=300)


@given(texts=st.lists(st.text(alphabet="abc xyz.?", min_size=1, max_size=20), min_size=1,
                      max_size=5))
def test_tokenize_corpus_frames_every_text(texts):
    tok = small_tokenizer()
    ids = tokenize_corpus(tok, texts)
    assert ids.dtype == torch.long and ids.ndim == 1
    assert int((ids == tok.bos_token_id).sum()) == len(texts)
    assert int((ids == tok.eos_token_id).sum()) == len(texts)
    call_rejects(lambda: tokenize_corpus(tok, texts[0]), ["list"])


def test_numpy_ints_are_fine_where_ints_are():
    scene = sample_scene(np.int64(3), n_objects=np.int64(2), image_size=np.int64(32))
    assert render_scene(scene, np.int64(40)).size == (40, 40)
