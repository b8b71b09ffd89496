"""minimllm.runs.RunCache: a cached run prints what a fresh run prints, marked as cached; changing a
setting, the package code or the towers misses the cache; MINIMLLM_FRESH=1 runs everything."""

import json

import pytest
import torch

from minimllm import runs
from minimllm.runs import RunCache, code_fingerprint, weights_fingerprint


def experiment(calls):
    def fn():
        calls.append(1)
        return {"accuracy": 0.5 + len(calls) / 100, "seconds": 3.0}
    return fn


def line(r):
    return f"A seed 0: accuracy {r['accuracy']:.3f} ({r['seconds']:.0f} s)"


def test_a_cached_run_prints_the_fresh_line_marked_cached(tmp_path, capsys):
    calls = []
    first = RunCache("t", path=tmp_path / "runs.json").run({"M": 9, "seed": 0}, experiment(calls),
                                                          line)
    fresh = capsys.readouterr().out
    cache = RunCache("t", path=tmp_path / "runs.json")  # a new kernel: read from the file
    again = cache.run({"seed": 0, "M": 9}, experiment(calls), line)  # key order does not matter
    cached = capsys.readouterr().out
    assert again == first and len(calls) == 1
    assert fresh.split("] ", 1)[1] == cached.split("] ", 1)[1] and "[ cached]" in cached
    assert cache.report().startswith("1 runs: 1 from the cache")


def test_a_setting_the_code_or_the_towers_changed_miss_the_cache(tmp_path, monkeypatch):
    calls, path = [], tmp_path / "runs.json"
    tower = torch.nn.Linear(3, 2)
    RunCache("t", (tower,), path).run({"M": 9, "lr": 1e-3}, experiment(calls))
    RunCache("t", (tower,), path).run({"M": 9, "lr": 3e-3}, experiment(calls))      # a setting
    assert len(calls) == 2
    with torch.no_grad():
        tower.weight[0, 0] += 1
    cache = RunCache("t", (tower,), path)
    cache.run({"M": 9, "lr": 1e-3}, experiment(calls))                              # the towers
    assert len(calls) == 3 and cache.stale() == 2
    monkeypatch.setattr(runs, "code_fingerprint", lambda: "other code")
    RunCache("t", (tower,), path).run({"M": 9, "lr": 1e-3}, experiment(calls))      # the code
    assert len(calls) == 4
    assert len(json.loads(path.read_text())) == 4  # every run saved as soon as it ended


def test_fresh_runs_everything_and_saves_it(tmp_path, monkeypatch):
    calls, path = [], tmp_path / "runs.json"
    RunCache("t", path=path).run({"M": 9}, experiment(calls))
    monkeypatch.setenv("MINIMLLM_FRESH", "1")
    cache = RunCache("t", path=path)
    result = cache.run({"M": 9}, experiment(calls))
    assert len(calls) == 2 and result["accuracy"] == 0.52
    assert "0 from the cache" in cache.report() and "MINIMLLM_FRESH" in cache.report()
    monkeypatch.delenv("MINIMLLM_FRESH")
    assert RunCache("t", path=path).run({"M": 9}, experiment(calls))["accuracy"] == 0.52


def test_fingerprints_change_with_what_they_hash(tmp_path):
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    assert weights_fingerprint(a) == weights_fingerprint(a)
    assert weights_fingerprint(a) != weights_fingerprint(b)
    (tmp_path / "m.py").write_text("x = 1\n")
    before = code_fingerprint(tmp_path)
    (tmp_path / "m.py").write_text("x = 2\n")
    assert code_fingerprint(tmp_path) != before


@pytest.mark.parametrize("settings", [{}, "M=9", {"f": object()}])
def test_bad_settings_are_refused_by_name(tmp_path, settings):
    with pytest.raises(TypeError, match="settings"):
        RunCache("t", path=tmp_path / "runs.json").run(settings, lambda: {})
