"""The JSON file of finished runs that the experiment scripts under scripts/ share.

One entry per run, keyed by a string that names its settings and seed. A sweep saves each run as
soon as it ends, so an interrupt loses only the run in progress, and a run already in the file
is skipped the next time.
"""

import json
from pathlib import Path


def load_runs(path: Path) -> dict[str, dict]:
    """Every run saved in `path` so far, by key (empty when there is no file yet)."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else {}


def save_run(path: Path, key: str, run: dict) -> dict[str, dict]:
    """Add (or replace) one run and return all of them. The file is read again first, since
    another sweep may have saved runs meanwhile, and replaced in one step, so it is never left
    half-written."""
    path = Path(path)
    runs = {**load_runs(path), key: run}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(runs, indent=1) + "\n")
    tmp.replace(path)
    return runs
