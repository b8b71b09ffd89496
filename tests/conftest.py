import os

import matplotlib
import pytest

matplotlib.use("Agg")  # tests draw figures without a screen
os.environ.setdefault("MINIMLLM_QUICK", "1")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
