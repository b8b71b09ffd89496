"""Tests of minimllm.anomaly: defect masks against the rendered pixels, AUROC and MMAD's detection
metrics by hand, the kNN detector on a seeded run, the defect questions re-derived from the
pixels, and the capstone's training run in quick settings."""

import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from minimllm.anomaly import (
    AnomalyExpert,
    PatchKNN,
    add_expert,
    calibrated_expert,
    defect_mask,
    detection_metrics,
    greedy_coreset,
    object_mask,
    patch_features,
    pixel_auroc,
)
from minimllm.capstone import DefectBatches, RunSettings, anomaly_run, configure_row, row_model
from minimllm.chat import ChatProcessor
from minimllm.data import BACKGROUND_RGB, grid_position, make_questions, render_scene
from minimllm.data import sample_scene as _sample_scene
from minimllm.evaluate import auroc
from minimllm.vision import to_pixel_values

SCRATCH_RGB, STAIN_RGB = (25, 25, 25), (105, 65, 30)  # the colours data._paint uses


def sample_scene(seed, **kw):
    return _sample_scene(np.random.default_rng(seed), **kw)


def changed_pixels(scene) -> np.ndarray:
    """(S, S) bool: the pixels that differ between the scene and the same scene undamaged."""
    damaged = np.asarray(render_scene(scene), dtype=int)
    clean = np.asarray(render_scene({**scene, "defects": []}), dtype=int)
    return (damaged != clean).any(-1)


@pytest.mark.parametrize("background", ["plain", "texture"])
def test_defect_masks_cover_the_defect_and_nothing_outside_the_object(background):
    kinds = set()
    for seed in range(40):
        scene = sample_scene(seed, defect_prob=1.0, background=background,
                             image_size=64 if seed % 2 else 96)
        d = scene["defects"][0]
        kinds.add(d["kind"])
        changed, mask = changed_pixels(scene), defect_mask(scene)
        assert mask.shape == (scene["image_size"],) * 2
        assert changed.any() and not (changed & ~mask).any(), "a damaged pixel is not masked"
        assert not (mask & ~object_mask(scene, d["object"])).any(), "the mask leaves its object"
        assert mask.sum() < 3 * changed.sum() + 16  # tight: not the whole object
    assert kinds == {"scratch", "missing chunk", "stain"}
    clean = sample_scene(0, defect_prob=0.0)
    assert not defect_mask(clean).any()
    with pytest.raises(ValueError, match="object 7"):
        object_mask(clean, 7)


def test_auroc_on_hand_computed_cases_equals_sklearn():
    assert auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75  # 3 of 4 pairs ordered right
    assert auroc([0, 1], [0.5, 0.5]) == 0.5                    # a tie counts half
    assert auroc([0, 0, 1], [0.1, 0.2, 0.3]) == 1.0
    assert auroc([1, 1, 0], [0.1, 0.2, 0.3]) == 0.0
    rng = np.random.default_rng(0)
    for _ in range(5):
        labels = rng.integers(0, 2, 200)
        scores = rng.integers(0, 6, 200) + labels * rng.random(200)  # many ties
        assert auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    maps, masks = np.zeros((2, 4, 4)), np.zeros((2, 4, 4), dtype=bool)
    maps[0, 1, 1], masks[0, 1, 1], masks[1, 2, 2] = 1.0, True, True
    # 2 defect pixels, 30 clean ones at 0: the found one beats all 30, the other ties with all 30
    assert pixel_auroc(maps, masks) == (30 + 30 / 2) / (2 * 30)
    with pytest.raises(ValueError, match="upsample"):
        pixel_auroc(np.zeros((2, 2, 2)), masks)


def test_detection_metrics_as_mmad_reports_them():
    m = detection_metrics([1, 1, 0, 0, 0], [1, 0, 1, 0, 0], [0.9, 0.2, 0.6, 0.1, 0.3])
    assert m["accuracy"] == 0.6
    assert m["overkill"] == pytest.approx(1 / 3) and m["miss"] == 0.5
    assert m["balanced_accuracy"] == pytest.approx(1 - (1 / 3 + 1 / 2) / 2)
    assert m["auroc"] == pytest.approx(4 / 6)  # 0.9 beats the 3 negatives, 0.2 one of them
    always_no = detection_metrics([1, 0, 0, 0], [0, 0, 0, 0])
    assert always_no["accuracy"] == 0.75 and always_no["balanced_accuracy"] == 0.5
    with pytest.raises(ValueError, match="defective and defect-free"):
        detection_metrics([1, 1], [1, 0])


def test_knn_detector_beats_chance_clearly_on_a_seeded_run(one_thread):
    from minimllm.contrastive import load_vision_encoder

    vision = load_vision_encoder(device="cpu")
    product = dict(colors=("blue",), shapes=("circle", "square"), max_objects=2)  # one category
    normal = [render_scene(sample_scene(1000 + k, defect_prob=0.0, **product)) for k in range(48)]
    scenes = [sample_scene(k, defect_prob=1.0 if k % 2 else 0.0, **product) for k in range(48)]
    labels = np.array([bool(s["defects"]) for s in scenes])
    bank = patch_features(vision, to_pixel_values(normal), feature_layer=-5)
    knn = PatchKNN(bank)
    assert knn.score(bank[:3]).max() < 0.02  # patches in the bank are at distance 0
    scores = knn.image_scores(patch_features(vision, to_pixel_values(
        [render_scene(s) for s in scenes]), feature_layer=-5))
    assert auroc(labels, scores) > 0.75


def test_greedy_coreset_covers_the_bank_better_than_random_rows():
    bank = torch.randn(600, 8) * torch.tensor([5.0] + [1.0] * 7)
    picked = greedy_coreset(bank, 30)
    assert len(set(picked.tolist())) == 30
    radius = lambda rows: torch.cdist(bank, bank[rows]).amin(1).max()
    random_rows = torch.randperm(600, generator=torch.Generator().manual_seed(0))[:30]
    assert radius(picked) < radius(random_rows)
    with pytest.raises(ValueError):
        greedy_coreset(bank, 0)


def kind_from_pixels(image: np.ndarray, clean: np.ndarray) -> str:
    """The kind of defect, from the damaged and the undamaged image alone: a missing chunk leaves
    pixels of the background's exact colour; otherwise the most changed pixel moved from the
    object's colour towards the scratch's dark grey or the stain's brown (whichever direction
    fits the change best)."""
    changed = (image != clean).any(-1)
    if (image[changed] == BACKGROUND_RGB).all(-1).any():
        return "missing chunk"
    y, x = divmod(int(np.abs(image - clean).sum(-1).argmax()), image.shape[1])
    delta, before = image[y, x] - clean[y, x], clean[y, x]

    def misfit(target):
        direction = np.subtract(target, before).astype(float)
        return np.abs(delta - (delta @ direction) / (direction @ direction) * direction).sum()

    return min(("scratch", SCRATCH_RGB), ("stain", STAIN_RGB), key=lambda t: misfit(t[1]))[0]


def test_defect_questions_are_rederived_from_the_pixels():
    """Every answer the generator gives, found again from the rendered image alone: whether
    pixels changed, where their centre is, what colour they turned and inside which object."""
    asked = set()
    for seed in range(60):
        scene = sample_scene(seed, defect_prob=0.5, image_size=64)
        changed = changed_pixels(scene) if scene["defects"] else np.zeros((64, 64), bool)
        image = np.asarray(render_scene(scene), dtype=int)
        clean = np.asarray(render_scene({**scene, "defects": []}), dtype=int)
        rng = np.random.default_rng(seed)
        for _ in range(8):
            q = make_questions(scene, rng, ["defect"])[0]
            text, answer = q["question"], q["answer"]
            named = [o for o in scene["objects"]
                     if f" {o['color']} {o['shape']} " in f" {text[:-1]} "]
            if text.startswith(("where", "in which part")):
                asked.add("where")
                ys, xs = np.nonzero(changed)
                assert answer == grid_position((xs.mean() + 0.5) / 64, (ys.mean() + 0.5) / 64)
            elif "kind" in text or "type" in text or text == "what is the defect?":
                asked.add("kind")
                assert answer == kind_from_pixels(image, clean)
            elif not named:  # is there a defect? / is anything damaged? ...
                asked.add("defect")
                assert answer == ("yes" if changed.any() else "no")
            else:  # is the <colour shape> damaged?
                asked.add("object")
                (obj,) = named
                x0, y0, x1, y1 = obj["bbox"]
                inside = changed[y0:y1, x0:x1].sum()
                assert answer == ("yes" if inside and inside == changed.sum() else "no")
    assert asked == {"defect", "where", "kind", "object"}


@pytest.fixture(scope="module")
def towers():
    from minimllm.mllm import load_towers

    return load_towers(allow_random=True, device="cpu")


def small_split(n, seed):
    scenes = [sample_scene([seed, k], defect_prob=0.5, max_objects=2) for k in range(n)]
    images = [render_scene(s) for s in scenes]
    rows = [{**s, "image": im} for s, im in zip(scenes, images)]
    return scenes, to_pixel_values(images), rows


def test_defect_batches_teach_the_defect_answers(towers):
    scenes, pixel_values, _ = small_split(12, 0)
    model = row_model("c_abstractor", 4, towers[0], towers[1])
    processor = ChatProcessor.for_model(model, towers[2])
    batch = DefectBatches(processor, scenes, pixel_values, {"defect": 1.0}, batch_size=6)(3)
    kinds = {"scratch", "missing chunk", "stain"}
    positions = {o["position"] for s in scenes for o in s["objects"]}
    for row in batch["labels"]:  # the assistant's answers, each closed by <|end|>
        answers = towers[2].decode(row[row != -100]).split("<|end|>")[:-1]
        assert answers[0] in ("yes", "no")  # is there a defect? comes first
        if answers[0] == "no":  # no defect: every object undamaged
            assert set(answers) == {"no"} and len(answers) in (2, 3)
        else:  # where, what kind, and about one or two objects (at most one damaged)
            assert len(set(answers) & positions) == 1 and len(set(answers) & kinds) == 1
            assert answers.count("yes") in (1, 2) and len(answers) in (4, 5)
    assert batch["pixel_values"].shape == (6, 3, 64, 64)
    with pytest.raises(ValueError, match="defect_prob"):
        DefectBatches(processor, [{**s, "defects": []} for s in scenes], pixel_values,
                      {"defect": 1.0})


def test_quick_run_of_every_row_is_fast_and_well_formed(towers, one_thread):
    scenes, pixel_values, rows = small_split(16, 1)
    start = time.perf_counter()
    for row in ("linear", "B"):
        run = anomaly_run(row, 4, towers, {"scenes": scenes, "pixel_values": pixel_values},
                          rows[:8], RunSettings(steps=2, stage1_steps=1, batch_size=4,
                                                feature_layer=-5))
        n_bad = sum(bool(r["defects"]) for r in rows[:8])
        assert run["M"] == (64 if row == "linear" else 4)
        assert run["sequence_tokens"] == (64 if row == "linear" else 1)
        assert len(run["p_yes"]) == 8 and len(run["where"]) == n_bad
        for key in ("accuracy", "balanced_accuracy", "overkill", "miss", "auroc"):
            assert 0.0 <= run["detection"][key] <= 1.0
        assert all(0.0 <= run[k] <= 1.0 for k in ("position", "object", "kind"))
    assert time.perf_counter() - start < 15
    with pytest.raises(ValueError, match="unknown row"):
        row_model("qformer_x", 4, towers[0], towers[1])


def test_assistant_row_starts_from_chapter_07s_saved_assistant(towers, one_thread):
    from minimllm.chat import load_mllm
    from minimllm.pretrained import find_pretrained
    from minimllm.runs import weights_fingerprint

    saved, _ = load_mllm(find_pretrained("assistant"))
    model = row_model("assistant", 4, towers[0], towers[1], feature_layer=-5)
    assert type(model) is type(saved) and weights_fingerprint(model) == weights_fingerprint(saved)
    assert model.config.vision_feature_layer == saved.config.vision_feature_layer  # its own
    scenes, pixel_values, rows = small_split(8, 3)
    run = anomaly_run("assistant", 4, towers, {"scenes": scenes, "pixel_values": pixel_values},
                      rows[:4], RunSettings(steps=1, stage1_steps=1, batch_size=2))
    assert (run["M"], run["sequence_tokens"]) == (saved.num_image_tokens, saved.tokens_per_image)
    assert run["feature_layer"] == saved.config.vision_feature_layer
    assert len(run["p_yes"]) == 4


def test_the_detectors_import_nothing_of_instruction_tuning():
    """Issue: a reader who wants PatchKNN or NF4 should not load the assistant's job."""
    code = ("import sys, minimllm.anomaly, minimllm.quant; "
            "print(sorted(m for m in ('minimllm.assistant', 'minimllm.captioning', "
            "'minimllm.capstone') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_expert_tokens_say_where_the_anomalous_patch_is():
    g = torch.Generator().manual_seed(0)
    normal = 0.1 * torch.randn(40, 64, 8, generator=g)  # defect-free patches: close to 0
    knn = PatchKNN(normal[:30])
    expert = calibrated_expert(knn, normal[30:], d_lm=16)
    patch_z = (knn.score(normal[30:]) - expert.stats[0]) / expert.stats[1]
    assert abs(patch_z.mean()) < 1e-5 and abs(patch_z.std() - 1) < 1e-5  # standardised
    query = 0.1 * torch.randn(3, 64, 8, generator=g)
    for i, (row, col) in enumerate([(7, 0), (0, 7), (4, 4)]):
        query[i, row * 8 + col] += 5.0  # one far patch: bottom left, top right, centre
    scores = expert.scores(query)                                     # (3, 10)
    assert scores[:, :9].argmax(1).tolist() == [6, 2, 4]              # its cell of the 3 x 3 grid
    assert torch.equal(scores[:, 9], scores[:, :9].amax(1))           # the image's token: the max
    assert scores[:, 9].min() > 3 * expert.scores(normal[30:])[:, 9].max()  # far above normal
    assert expert(query).shape == (3, 10, 16)
    with pytest.raises(ValueError, match="spread"):
        AnomalyExpert(knn, 16, mean=0.0, std=0.0)


def test_expert_tokens_follow_the_image_tokens_and_train_with_the_projector(towers):
    scenes, pixel_values, _ = small_split(6, 2)
    model = row_model("c_abstractor", 4, towers[0], towers[1], feature_layer=-5)
    normal = patch_features(model.vision, pixel_values, -5)
    model = add_expert(model, calibrated_expert(PatchKNN(normal), normal, model.lm.config.dim))
    assert model.num_image_tokens == 4 + 10
    processor = ChatProcessor.for_model(model, towers[2])
    assert processor.num_image_tokens == 14
    batch = DefectBatches(processor, scenes, pixel_values, {"defect": 1.0}, batch_size=4)(0)
    configure_row(model, 1)
    model(batch["input_ids"], batch["pixel_values"], labels=batch["labels"]).loss.backward()
    expert = model.projector.expert
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in expert.mlp.parameters())
    assert expert.cell.grad.abs().sum() > 0
    assert not expert.knn.bank.requires_grad and model.lm.embed_tokens.weight.grad is None
