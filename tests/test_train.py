"""The training loop: it learns, follows its schedule, and resumes a run exactly."""

import pytest
import torch
from torch import nn

from minimllm.train import History, TrainConfig, load_checkpoint, lr_multiplier, plot_history, train


def _problem(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.LayerNorm(16), nn.Linear(16, 1))
    w = torch.randn(8, 1)

    def batches(step):
        g = torch.Generator().manual_seed(1000 + step)
        x = torch.randn(32, 8, generator=g)
        return x, x @ w

    def loss_fn(model, batch):
        x, y = batch
        return nn.functional.mse_loss(model(x), y)

    return model, batches, loss_fn


def test_loss_falls_and_eval_runs():
    model, batches, loss_fn = _problem()
    calls = []

    def eval_fn(m):
        calls.append(m.training)
        return {"val_loss": loss_fn(m, batches(10_000)).item()}

    h = train(model, loss_fn, batches, TrainConfig(steps=60, lr=1e-2, eval_every=20, device="cpu"),
              eval_fn=eval_fn)
    assert isinstance(h, History) and h.steps == list(range(1, 61)) and len(h.losses) == 60
    assert sum(h.losses[-10:]) / 10 < 0.5 * sum(h.losses[:10]) / 10
    assert [s for s, _ in h.evals] == [20, 40, 60] and calls == [False] * 3
    assert plot_history(h) is not None


def test_schedule():
    cfg = TrainConfig(steps=100, lr=1.0)
    assert cfg.warmup == 5
    assert lr_multiplier(0, cfg) == pytest.approx(0.2)
    assert lr_multiplier(4, cfg) == pytest.approx(1.0)
    assert lr_multiplier(100, cfg) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        TrainConfig(steps=0)


def test_params_subset_only_moves_those():
    model, batches, loss_fn = _problem()
    frozen = model[0].weight.detach().clone()
    train(model, loss_fn, batches, TrainConfig(steps=5, device="cpu"), params=model[3].parameters())
    assert torch.equal(model[0].weight, frozen)


def test_resume_gives_same_weights_as_uninterrupted(tmp_path):
    cfg = dict(steps=12, lr=1e-2, device="cpu", checkpoint_every=5)
    model_a, batches, loss_fn = _problem()
    ha = train(model_a, loss_fn, batches, TrainConfig(**cfg, checkpoint_path=tmp_path / "a"))

    model_b, _, _ = _problem()

    def crashing(model, batch):
        if crashing.n == 8:
            raise KeyboardInterrupt  # the run dies after step 7: last checkpoint is step 5
        crashing.n += 1
        return loss_fn(model, batch)

    crashing.n = 0
    with pytest.raises(KeyboardInterrupt):
        train(model_b, crashing, batches, TrainConfig(**cfg, checkpoint_path=tmp_path / "b"))
    model_c, _, _ = _problem(seed=123)  # a fresh process would build the model anew
    hc = train(model_c, loss_fn, batches, TrainConfig(**cfg, checkpoint_path=tmp_path / "b"))
    assert hc.steps == list(range(1, 13)) and hc.losses == ha.losses
    for pa, pc in zip(model_a.parameters(), model_c.parameters()):
        assert torch.equal(pa, pc)
    step, h = load_checkpoint(tmp_path / "b", _problem()[0])
    assert step == 12 and h.losses == ha.losses


def test_resume_with_iterable_batches(tmp_path):
    model_a, batches, loss_fn = _problem()
    data = [batches(i) for i in range(4)]  # re-iterated when exhausted
    cfg = dict(steps=10, lr=1e-2, device="cpu", checkpoint_every=3)
    train(model_a, loss_fn, data, TrainConfig(**cfg))
    model_b, _, _ = _problem()
    train(model_b, loss_fn, data, TrainConfig(**{**cfg, "steps": 10}, checkpoint_path=tmp_path))
    for pa, pb in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(pa, pb)


def test_bad_inputs(tmp_path):
    model, batches, loss_fn = _problem()
    gen = (batches(i) for i in range(3))
    with pytest.raises(ValueError, match="ran out"):
        train(model, loss_fn, gen, TrainConfig(steps=5, device="cpu"))
    with pytest.raises(ValueError, match="scalar"):
        train(model, lambda m, b: m(b[0]), batches, TrainConfig(steps=2, device="cpu"))
    train(model, loss_fn, batches, TrainConfig(steps=2, device="cpu", checkpoint_path=tmp_path))
    other = nn.Linear(3, 3)
    with pytest.raises(ValueError, match="does not match"):
        train(other, lambda m, b: m(torch.ones(3)).sum(), batches,
              TrainConfig(steps=3, device="cpu", checkpoint_path=tmp_path))
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="corrupt"):
        load_checkpoint(tmp_path, model)


def test_freezing_keeps_weights_and_the_report_counts_them():
    from minimllm.train import freeze, trainable_report, unfreeze

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    freeze(net[0])
    report = trainable_report(net, show=False)
    assert report == {"0": (0, 32), "2": (9, 9), "total": (9, 41)}  # ReLU holds no parameters
    before0, before2 = net[0].weight.clone(), net[2].weight.clone()
    batch = (torch.randn(16, 3), torch.randn(16, 1))
    train(net, lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1]), [batch],
          TrainConfig(steps=3, lr=1e-2, device="cpu", log_every=0))
    assert torch.equal(net[0].weight, before0) and net[0].weight.grad is None
    assert not torch.equal(net[2].weight, before2)
    unfreeze(net)
    assert trainable_report(net, parts=["0"], show=False) == {"0": (32, 32), "total": (41, 41)}


def _files(folder):
    """{name: bytes} of the files under `folder` (hidden leftovers included)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_save_interrupted_between_its_two_files_keeps_the_previous_checkpoint(tmp_path,
                                                                                 monkeypatch):
    import minimllm.train as train_module

    cfg = dict(steps=12, lr=1e-2, device="cpu", checkpoint_every=5)
    model_a, batches, loss_fn = _problem()
    train(model_a, loss_fn, batches, TrainConfig(**cfg, checkpoint_path=tmp_path / "a"))

    real_save, saves = torch.save, []

    def dying_save(obj, f, *args, **kwargs):  # the trainer state of the second checkpoint
        saves.append(obj["step"])
        if obj["step"] == 10:
            raise KeyboardInterrupt("killed after the weights, before the trainer state")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(train_module.torch, "save", dying_save)
    model_b, _, _ = _problem()
    with pytest.raises(KeyboardInterrupt):
        train(model_b, loss_fn, batches, TrainConfig(**cfg, checkpoint_path=tmp_path / "b"))
    monkeypatch.undo()
    assert saves == [5, 10]
    folder = tmp_path / "b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no half-written folder
    before = _files(folder)
    assert sorted(before) == ["model.safetensors", "trainer_state.pt"]
    step, history = load_checkpoint(folder, _problem()[0])
    assert step == 5 and history.steps == [1, 2, 3, 4, 5]
    # a failed load changes no file and not the model
    wrong = nn.Sequential(nn.Linear(8, 4))
    kept = [p.detach().clone() for p in wrong.parameters()]
    with pytest.raises(ValueError, match="does not match this model"):
        load_checkpoint(folder, wrong)
    assert all(torch.equal(p, k) for p, k in zip(wrong.parameters(), kept))
    model_d = _problem()[0]
    fewer = torch.optim.AdamW(model_d[0].parameters())
    kept = [p.detach().clone() for p in model_d.parameters()]
    with pytest.raises(ValueError, match="optimized other parameters"):
        load_checkpoint(folder, model_d, fewer)
    assert all(torch.equal(p, k) for p, k in zip(model_d.parameters(), kept))
    assert _files(folder) == before
    # resuming after the interruption ends exactly where the uninterrupted run did
    model_c, _, _ = _problem(seed=123)
    train(model_c, loss_fn, batches, TrainConfig(**cfg, checkpoint_path=folder))
    for pa, pc in zip(model_a.parameters(), model_c.parameters()):
        assert torch.equal(pa, pc)


def test_a_save_interrupted_between_the_two_renames_puts_the_old_folder_back(tmp_path,
                                                                             monkeypatch):
    from pathlib import Path

    from minimllm.pretrained import replace_folder

    replace_folder(tmp_path / "ckpt", lambda f: (f / "w").write_text("old"))
    real_rename, calls = Path.rename, []

    def rename(self, target):
        calls.append(self.name)
        if len(calls) == 2:  # old folder moved aside, the new one not yet in place
            raise KeyboardInterrupt
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        replace_folder(tmp_path / "ckpt", lambda f: (f / "w").write_text("new"))
    monkeypatch.undo()
    assert calls[0] == "ckpt" and calls[1].startswith(".ckpt.tmp")
    assert _files(tmp_path) == {"ckpt/w": b"old"}


def test_a_checkpoint_path_holding_other_files_is_refused(tmp_path):
    model, batches, loss_fn = _problem()
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds other files.*new or empty folder"):
        train(model, loss_fn, batches, TrainConfig(steps=2, device="cpu", checkpoint_path=tmp_path))
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.fixture(scope="module")
def tokens():
    """(vocabulary size, token stream): Shapes World text as bytes (no tokenizer to train)."""
    from minimllm.data import text_corpus

    return 256, torch.tensor(list(" ".join(text_corpus(n_scenes=40, seed=1)).encode()))


def _lm_run(tokens, seed: int, steps: int = 10) -> tuple[list[float], torch.Tensor]:
    """A short language-model run from `seed` alone: model, batches and training all seeded."""
    from minimllm.lm import LanguageModel, LMConfig, lm_loss, random_windows
    from minimllm.utils import seed_everything

    vocab_size, stream = tokens
    seed_everything(seed)
    model = LanguageModel(LMConfig(vocab_size=vocab_size, dim=32, n_layers=2, n_heads=4,
                                   n_kv_heads=2, ffn_dim=64, max_seq_len=32))
    history = train(model, lm_loss, random_windows(stream, 8, 32, seed=seed),
                    TrainConfig(steps=steps, lr=3e-3, device="cpu", seed=seed))
    return history.losses, torch.cat([p.detach().flatten() for p in model.parameters()])


def test_the_same_seed_gives_the_same_loss_curve_on_cpu(tokens, one_thread):
    losses_a, weights_a = _lm_run(tokens, seed=3)
    losses_b, weights_b = _lm_run(tokens, seed=3)
    assert losses_a == losses_b and torch.equal(weights_a, weights_b)  # bit for bit
    assert losses_a[-1] < losses_a[0]
    losses_c, _ = _lm_run(tokens, seed=4)
    assert losses_c != losses_a  # the seed does decide the run


def test_train_stages_is_one_train_run_per_stage_after_its_prepare():
    """Stage 1 trains only the last layer (its prepare freezes the first); stage 2 unfreezes and
    trains all, on its own batches. The result equals two `train` runs by hand, and the log
    names each stage's trainable parameters and its final loss."""
    from minimllm.train import Stage, final_loss, freeze, train_stages, unfreeze

    def stages(model, batches):
        return [Stage(1, 6, 1e-2, batches, lambda m: freeze(m[0]), trains="the head"),
                Stage("two", 8, 5e-3, lambda step: batches(step + 50), unfreeze)]

    model, batches, loss_fn = _problem()
    first = model[0].weight.clone()
    lines = []
    histories = train_stages(model, loss_fn, stages(model, batches), seed=3, log=lines.append,
                             device="cpu", log_every=0)
    assert list(histories) == [1, "two"] and len(histories[1].losses) == 6
    assert lines[0] == "stage 1: training the head (49 of 193 parameters), 6 steps"
    assert lines[3].startswith("stage two done: final loss ")
    assert float(lines[3].split()[-1]) == pytest.approx(final_loss(histories["two"]), abs=1e-4)

    by_hand, _, _ = _problem()
    freeze(by_hand[0])
    train(by_hand, loss_fn, batches, TrainConfig(steps=6, lr=1e-2, warmup_steps=1, seed=3,
                                                 device="cpu", log_every=0))
    assert torch.equal(by_hand[0].weight, first)  # stage 1 left the frozen layer alone
    unfreeze(by_hand)
    train(by_hand, loss_fn, lambda step: batches(step + 50),
          TrainConfig(steps=8, lr=5e-3, warmup_steps=1, seed=3, device="cpu", log_every=0))
    for a, b in zip(model.parameters(), by_hand.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="no step"):
        final_loss(History())
