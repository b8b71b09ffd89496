import os

import matplotlib
import pytest
import torch

matplotlib.use("Agg")  # tests draw figures without a screen
os.environ.setdefault("MINIMLLM_QUICK", "1")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture
def one_thread():
    """Tiny models train faster on one thread, and far faster on a busy shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
