"""scripts/question_noise.py: only the frame words of a visual question change; what it names,
the reply, the other tasks and the recipe's draws stay."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from question_noise import CONTENT_WORDS, frame_words, noisy_batches, noisy_question  # noqa: E402


def test_content_words_stay_in_order_and_only_frame_words_come_and_go():
    rng, pool = np.random.default_rng(0), frame_words()
    question = "could you tell me the colour of the small red star in the top left?"
    content = [w for w in question[:-1].split() if w in CONTENT_WORDS]
    changed = 0
    for _ in range(200):
        noisy = noisy_question(question, 0.3, rng, pool)
        assert noisy.endswith("?")
        assert [w for w in noisy[:-1].split() if w in CONTENT_WORDS] == content
        assert all(w in CONTENT_WORDS or w in pool for w in noisy[:-1].split())
        changed += noisy != question
    assert changed > 150  # p = 0.3 over 5 frame words and 14 places: nearly always changed
    assert not set(pool) & CONTENT_WORDS and "colour" not in pool and "damaged" not in pool


def test_bad_probability_is_refused():
    for p in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="probability"):
            noisy_batches(p)


def test_the_batches_change_only_the_vqa_question():
    from minimllm.assistant import LOOK_PROMPT, InstructionBatches

    scenes = [{"objects": [{"shape": "star", "color": "red", "size": "small",
                            "position": "top left"},
                           {"shape": "circle", "color": "blue", "size": "large",
                            "position": "bottom right"}]}] * 4
    noisy_class = noisy_batches(0.5)
    args = (None, scenes, np.zeros((4, 3, 8, 8)), {"vqa": 1.0}, 4, 3, LOOK_PROMPT, "described")
    clean, noisy = InstructionBatches(*args), noisy_class(*args)
    noisy.noise = np.random.default_rng(0)
    for seed in range(20):
        a = clean.messages("vqa", scenes[0], np.random.default_rng(seed))
        b = noisy.messages("vqa", scenes[0], np.random.default_rng(seed))
        assert a[1:] == b[1:]  # the reply is the recipe's
        assert b[0]["content"].startswith("<image> ") and b[0]["content"].endswith(LOOK_PROMPT)
        words = lambda m: [w.strip("?.") for w in m[0]["content"].split()
                           if w.strip("?.") in CONTENT_WORDS]
        assert words(a) == words(b)
        c = noisy.messages("describe", scenes[0], np.random.default_rng(seed))
        assert c == clean.messages("describe", scenes[0], np.random.default_rng(seed))
