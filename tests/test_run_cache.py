"""scripts/run_cache.py: the JSON file of finished runs the experiment scripts share."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from run_cache import load_runs, save_run  # noqa: E402


def test_runs_saved_one_at_a_time_survive_and_replace(tmp_path):
    path = tmp_path / "sub" / "runs.json"
    assert load_runs(path) == {}
    save_run(path, "a seed=0", {"accuracy": 0.5})
    runs = save_run(path, "a seed=1", {"accuracy": 0.7})
    assert runs == load_runs(path) == {"a seed=0": {"accuracy": 0.5}, "a seed=1": {"accuracy": 0.7}}
    save_run(path, "a seed=0", {"accuracy": 0.6})
    assert load_runs(path)["a seed=0"] == {"accuracy": 0.6}
    assert [p.name for p in path.parent.iterdir()] == ["runs.json"]  # no temporary file left


def test_a_run_saved_by_another_sweep_is_kept(tmp_path):
    path = tmp_path / "runs.json"
    save_run(path, "x", {"v": 1})
    save_run(path, "y", {"v": 2})  # as if a second process wrote between our load and save
    assert set(save_run(path, "z", {"v": 3})) == {"x", "y", "z"}
