"""Property-based tests (Hypothesis) of the capstone's detectors and masks (minimllm.anomaly):
valid scenes, features and scores give masks, maps and metrics of the documented shape and range;
invalid ones raise ValueError / TypeError from minimllm's own code, with a message that names the
argument. The helpers come from tests/test_properties.py."""

import numpy as np
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from test_properties import call_rejects, seeds

from minimllm.anomaly import (
    aggregate_neighbourhood,
    best_threshold,
    defect_mask,
    defect_pairs,
    detection_metrics,
    object_mask,
    upsample_map,
)
from minimllm.capstone import defect_messages
from minimllm.data import sample_scene

scenes = st.builds(lambda seed: sample_scene(np.random.default_rng(seed), defect_prob=1.0), seeds)


@given(scenes, st.integers(8, 96))
def test_masks_are_boolean_images_of_the_size_asked(scene, size):
    mask = defect_mask(scene, size)
    assert mask.shape == (size, size) and mask.dtype == bool
    objects = [object_mask(scene, i, size) for i in range(len(scene["objects"]))]
    assert all(m.shape == (size, size) for m in objects)
    if size >= 24:  # apart (below, a pixel spans the gap between two cells' objects)
        assert not np.logical_and(objects[0], sum(objects[1:], np.zeros_like(mask))).any()


@given(scenes, st.sampled_from([0, -4, 2.5, "64", True]))
def test_a_bad_mask_size_is_refused_by_name(scene, size):
    call_rejects(lambda: defect_mask(scene, size), ["image_size"])


@given(scenes)
def test_broken_scenes_are_refused_by_the_masks_and_the_conversations(scene):
    broken = {"objects": []}
    call_rejects(lambda: defect_mask(broken, 32), ["objects"])
    call_rejects(lambda: object_mask(scene, len(scene["objects"])), ["object"])
    call_rejects(lambda: defect_messages(broken, np.random.default_rng(0)), ["objects"])


@given(st.integers(1, 3), st.integers(2, 5), st.integers(1, 4), st.sampled_from([1, 3, 5]))
def test_neighbourhood_means_keep_the_shape_and_a_constant(n, g, d, size):
    x = torch.randn(n, g * g, d)
    out = aggregate_neighbourhood(x, size)
    assert out.shape == x.shape and torch.isfinite(out).all()
    const = torch.full((n, g * g, d), 2.5)
    assert torch.allclose(aggregate_neighbourhood(const, size), const)
    if size == 1:
        assert torch.allclose(out, x)


@given(st.sampled_from([0, 2, 4, -1, 3.0]))
def test_a_bad_neighbourhood_is_refused_by_name(size):
    call_rejects(lambda: aggregate_neighbourhood(torch.zeros(1, 16, 2), size), ["size"])


@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 40))
def test_maps_are_upsampled_to_the_image_size(n, g, size):
    scores = torch.rand(n, g * g)
    maps = upsample_map(scores, size)
    assert maps.shape == (n, size, size)
    assert scores.min() - 1e-6 <= maps.min() and maps.max() <= scores.max() + 1e-6  # bilinear


@given(st.sampled_from([0, -1, "32"]))
def test_bad_sizes_and_counts_are_refused_by_name(bad):
    call_rejects(lambda: upsample_map(torch.rand(1, 4), bad), ["image_size"])
    call_rejects(lambda: defect_pairs(bad), ["n_scenes"])


@given(st.lists(st.tuples(st.booleans(), st.floats(0, 1)), min_size=2, max_size=40))
def test_detection_metrics_and_the_threshold_on_valid_scores(points):
    labels, scores = map(list, zip(*points))
    assume(any(labels) and not all(labels))
    t = best_threshold(labels, scores)
    m = detection_metrics(labels, [s >= t for s in scores], scores)
    assert all(0 <= v <= 1 for v in m.values())
    assert m["balanced_accuracy"] == 1 - (m["overkill"] + m["miss"]) / 2
    assert m["balanced_accuracy"] >= 0.5  # the best threshold beats calling everything one way


@given(st.sampled_from(["strings", "nan", "short"]))
def test_bad_labels_and_scores_are_refused_by_name(how):
    labels, scores = [1, 0, 1, 0], [0.9, 0.1, 0.8, 0.3]
    if how == "strings":
        call_rejects(lambda: best_threshold(["yes", "no", "yes", "no"], scores), ["labels"])
        call_rejects(lambda: detection_metrics(["yes", "no"], [True, False]), ["labels"])
    elif how == "nan":
        call_rejects(lambda: best_threshold(labels, [0.9, float("nan"), 0.8, 0.3]), ["scores"])
    else:
        call_rejects(lambda: best_threshold(labels, scores[:3]), ["scores"])
