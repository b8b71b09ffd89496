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


def checkpoint_at(folder: str, commit: str) -> Path:
    """The checkpoint folder as commit `commit` shipped it, written from git history to
    runs/<name>_at_<commit>/ (once): "data/checkpoints/lm at commit 7a8be5c" names the
    foundation LM's phase 1."""
    import subprocess

    out = Path("runs") / f"{Path(folder).name}_at_{commit}"
    if not (out / "config.json").exists():
        names = subprocess.run(["git", "ls-tree", "--name-only", f"{commit}:{folder}"],
                               check=True, capture_output=True, text=True).stdout.split()
        out.mkdir(parents=True, exist_ok=True)
        for name in names:
            blob = subprocess.run(["git", "show", f"{commit}:{folder}/{name}"], check=True,
                                  capture_output=True).stdout
            (out / name).write_bytes(blob)
    return out
