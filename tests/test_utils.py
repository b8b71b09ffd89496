"""minimllm.utils: quick mode, devices, seeds, paths, plots."""
import numpy as np
import pytest
import torch

from minimllm import utils


def test_quick_reads_the_environment(monkeypatch):
    monkeypatch.setenv("MINIMLLM_QUICK", "1")
    assert utils.quick()
    monkeypatch.setenv("MINIMLLM_QUICK", "0")
    assert not utils.quick()
    monkeypatch.delenv("MINIMLLM_QUICK")
    assert not utils.quick()
    monkeypatch.setenv("MINIMLLM_QUICK", "maybe")
    with pytest.raises(ValueError, match="MINIMLLM_QUICK"):
        utils.quick()


def test_device_choice_and_clear_errors(monkeypatch):
    monkeypatch.delenv("MINIMLLM_DEVICE", raising=False)
    expected = ("cuda" if torch.cuda.is_available()
                else "mps" if torch.backends.mps.is_available() else "cpu")
    assert utils.get_device().type == expected
    assert utils.get_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            utils.get_device("cuda")
        assert not utils.bf16_supported("cpu")


def test_autocast_is_fp32_on_cpu():
    with utils.autocast("cpu"):
        y = torch.randn(4, 4) @ torch.randn(4, 4)
    assert y.dtype == torch.float32


def test_seed_everything_repeats_all_generators():
    utils.seed_everything(7)
    a = (torch.rand(3), np.random.rand(3), __import__("random").random())
    utils.seed_everything(7)
    b = (torch.rand(3), np.random.rand(3), __import__("random").random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    with pytest.raises(ValueError):
        utils.seed_everything(-1)


def test_count_parameters_trainable_only():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    model[0].requires_grad_(False)
    assert utils.count_parameters(model) == 16 + 10
    assert utils.count_parameters(model, trainable_only=True) == 10


def test_paths_follow_minimllm_home(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIMLLM_HOME", str(tmp_path))
    assert utils.data_dir() == tmp_path / "data"
    assert utils.checkpoints_dir() == tmp_path / "data" / "checkpoints"
    assert utils.cache_dir().parent == utils.artifacts_dir().parent == tmp_path / "data"


def test_environment_report_never_crashes():
    report = utils.environment_report()
    assert report["torch"] == torch.__version__
    assert report["device"].split()[0] in {"cuda", "mps", "cpu"}
    works, message = utils.bitsandbytes_status("cpu")
    assert isinstance(works, bool) and "bitsandbytes" in message


def test_plots_draw_what_they_are_given():
    ax = utils.plot_curves({"train": [3, 2, 1], "val": ([0, 2], [3.5, 1.5])})
    lines = ax.get_lines()
    assert [list(line.get_ydata()) for line in lines] == [[3, 2, 1], [3.5, 1.5]]
    assert list(lines[1].get_xdata()) == [0, 2]
    fig = utils.show_images([torch.rand(3, 8, 8), np.zeros((8, 8)), torch.rand(1, 8, 8)],
                            titles=["a", "b", "c"])
    assert [ax.get_title() for ax in fig.axes[:3]] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="titles"):
        utils.show_images([np.zeros((4, 4))], titles=["a", "b"])
    with pytest.raises(ValueError, match="at least one"):
        utils.show_images([])


def test_init_weights_draws_small_normal_weights_and_zero_biases():
    from minimllm.utils import init_weights

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.Embedding(300, 64),
                              torch.nn.LayerNorm(8))
    net.apply(init_weights)
    assert abs(net[0].weight.std().item() - 0.02) < 0.001
    assert abs(net[1].weight.std().item() - 0.02) < 0.002
    assert torch.count_nonzero(net[0].bias) == 0
    assert torch.equal(net[2].weight, torch.ones(8)), "norms keep their own initialisation"


def test_encode_in_batches_equals_one_big_batch_and_restores_the_mode():
    from minimllm.utils import encode_in_batches

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5)).train()
    x = torch.randn(10, 4)
    out = encode_in_batches(net, x, batch_size=3)
    net.eval()
    torch.testing.assert_close(out, net(x))  # eval mode: dropout off in every chunk
    net.train()
    encode_in_batches(net, x, batch_size=3)
    assert net.training and not out.requires_grad
    doubled = encode_in_batches(net, x, encode=lambda chunk: 2 * chunk, batch_size=4)
    assert torch.equal(doubled, 2 * x)
