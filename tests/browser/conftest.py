"""Browser tests (`make browser-test`): JupyterLab and headless Chromium, minutes each.

They are not part of `make unit` / `pytest tests`: nothing here is collected unless
MINIMLLM_BROWSER=1, which `make browser-test` sets (after installing playwright and Chromium)."""

import os

import pytest

if os.environ.get("MINIMLLM_BROWSER", "0") != "1":
    collect_ignore_glob = ["test_*.py"]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Each phase's report on the test item (`item.rep_call`), so that a fixture can keep the
    run's folder when the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
