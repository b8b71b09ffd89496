"""Property-based tests of the training loop's settings (chapter 01's train.py): every setting
outside its domain is refused by name, and the loop refuses a loss that is not a scalar."""
import math

import torch
from hypothesis import given
from hypothesis import strategies as st
from test_properties import call_rejects

from minimllm.train import TrainConfig, train

not_numbers = st.sampled_from(["0.1", None, [1e-3], float("nan"), float("inf")])
# (field, values outside its domain) for a run of 5 steps
BAD = {
    "steps": st.integers(-5, 0) | st.floats(0.5, 9.5).filter(lambda x: x != int(x))
    | st.sampled_from(["5", None]),
    "lr": st.floats(-1, 0) | not_numbers,
    "grad_accum_steps": st.integers(-3, 0),
    "warmup_steps": st.integers(-5, -1) | st.integers(6, 50),
    "weight_decay": st.floats(-1, -1e-6),
    "log_every": st.integers(-5, -1),
    "grad_clip": st.floats(-5, -1e-6),
    "seed": st.integers(-5, -1),
    "eval_every": st.integers(-5, -1),
    "checkpoint_every": st.integers(-5, -1),
}


@given(st.data())
def test_settings_outside_their_domain_are_refused_by_name(data):
    field = data.draw(st.sampled_from(sorted(BAD)))
    value = data.draw(BAD[field])
    settings = {"steps": 5, field: value}
    call_rejects(lambda: TrainConfig(**settings), (field,))


@given(steps=st.integers(1, 10**6), lr=st.floats(1e-8, 1.0), warmup=st.floats(0, 1),
       accum=st.integers(1, 16), clip=st.none() | st.floats(0, 10))
def test_settings_in_their_domain_are_kept(steps, lr, warmup, accum, clip):
    warmup_steps = int(warmup * steps)
    config = TrainConfig(steps=steps, lr=lr, warmup_steps=warmup_steps, grad_accum_steps=accum,
                         grad_clip=clip)
    assert (config.steps, config.warmup_steps, config.grad_accum_steps) == (
        steps, warmup_steps, accum)
    assert math.isclose(config.lr, lr)


@given(st.sampled_from([(3, 1), (2,), (0,)]))
def test_a_loss_that_is_not_a_scalar_is_refused(shape):
    model = torch.nn.Linear(2, 1)
    call_rejects(lambda: train(model, lambda net, b: net(b).sum() * torch.ones(shape), lambda s:
                               torch.randn(3, 2), TrainConfig(steps=1, device="cpu")),
                 ("loss_fn", "scalar"))


@given(st.integers() | st.floats(allow_nan=False) | st.none() | st.text(max_size=5)
       | st.dictionaries(st.text(max_size=3), st.integers(), max_size=3))
def test_batches_that_are_no_batches_are_refused_by_name(batches):
    # a number, a string (its characters would be the batches), one batch dict (its keys would)
    model = torch.nn.Linear(2, 1)
    call_rejects(lambda: train(model, lambda net, b: net(b).pow(2).mean(), batches,
                               TrainConfig(steps=1, device="cpu")), ("batches",))
