"""`train` on two processes (DistributedDataParallel over gloo, as under `torchrun`) is the
single-process run: the ranks agree, the losses and weights match one process trained on the same
global batches, with or without gradient accumulation, and a crashed run resumes on every rank."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from minimllm.lm import LanguageModel, LMConfig, lm_loss
from minimllm.train import TrainConfig, train

STEPS, BATCH = 5, 8


def _model() -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(LMConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2, n_kv_heads=1,
                                  ffn_dim=32, max_seq_len=16))


def _batches(step: int) -> torch.Tensor:
    """The global batch of a step: BATCH random sequences of 16 tokens (every sample has as many
    tokens, so the mean loss of the batch is the mean of the ranks' mean losses)."""
    return torch.randint(50, (BATCH, 16), generator=torch.Generator().manual_seed(step))


def _config(**kw) -> TrainConfig:
    return TrainConfig(steps=STEPS, lr=1e-2, device="cpu", log_every=0, **kw)


class _Crash(Exception):
    pass


def _worker(rank: int, port: int, out: str) -> None:
    """One rank, set up as torchrun would (the environment), so `train` starts the process group."""
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE="2")
    results, seen = {}, []

    def loss_fn(model, batch):  # records what each call sees: a DDP model, this rank's share
        seen.append((type(model).__name__, len(batch)))
        return lm_loss(model, batch)

    for name, accum in (("ddp", 1), ("accum", 2)):
        model = _model()
        history = train(model, loss_fn, _batches, _config(grad_accum_steps=accum))
        results[name] = (history.losses, model.state_dict())
    results["seen"] = seen

    def crashing(model, batch):  # both ranks die after step 3; the last checkpoint is step 2
        if crashing.n == 3:
            raise _Crash
        crashing.n += 1
        return lm_loss(model, batch)

    crashing.n = 0
    ckpt = os.path.join(out, "ckpt")
    try:
        train(_model(), crashing, _batches, _config(checkpoint_path=ckpt, checkpoint_every=2))
    except _Crash:
        pass
    model = LanguageModel(_model().config)  # a fresh process would build the model anew
    history = train(model, lm_loss, _batches, _config(checkpoint_path=ckpt, checkpoint_every=2))
    results["resumed"] = (history.losses, model.state_dict())
    torch.save(results, os.path.join(out, f"rank{rank}.pt"))
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(120)
def test_two_processes_train_like_one(tmp_path, one_thread):
    mp.start_processes(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, start_method="spawn")
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    ddp = "DistributedDataParallel"
    assert ranks[0]["seen"] == [(ddp, BATCH // 2)] * STEPS + [(ddp, BATCH // 4)] * 2 * STEPS
    model = _model()
    losses = train(model, lm_loss, _batches, _config()).losses  # one process, the whole batch
    for name in ("ddp", "accum", "resumed"):
        (losses0, state0), (losses1, state1) = ranks[0][name], ranks[1][name]
        assert losses0 == losses1, f"{name}: the ranks log the same (global mean) losses"
        for k in state0:
            assert torch.equal(state0[k], state1[k]), f"{name}: the ranks' weights differ at {k}"
        assert losses0 == pytest.approx(losses, rel=1e-5), name
        for k, v in model.state_dict().items():
            torch.testing.assert_close(state0[k], v, rtol=1e-4, atol=1e-5, msg=f"{name}: {k}")
    assert ranks[0]["resumed"][0] == ranks[0]["ddp"][0]  # the resumed run is the uninterrupted one


def test_a_batch_that_does_not_split_is_refused():
    from minimllm.train import _split

    parts = _split({"x": torch.arange(4), "texts": list("abcd"), "scale": torch.tensor(2.0)}, 2)
    assert parts[1]["x"].tolist() == [2, 3] and parts[1]["texts"] == ["c", "d"]
    assert parts[0]["scale"] == parts[1]["scale"] == 2.0  # not per sample: every part gets it
    with pytest.raises(ValueError, match="multiple of 4"):
        _split((torch.zeros(6, 3), torch.zeros(6)), 4)
    with pytest.raises(ValueError, match="grad_accum_steps"):
        TrainConfig(steps=3, grad_accum_steps=0)
