"""Cached experiment runs for the chapters' tables (hand-written; no chapter teaches it).

A chapter's table is many training runs (chapter 06: 14, chapter 08: 10, chapter 09: 10), and a
kernel that dies in the middle should not lose the finished ones. `RunCache` keeps each finished
run in a JSON file, under a key made of

- every setting the notebook passes (`settings`: method, M, seed, steps, lr, batch size, ...),
- a fingerprint of the package's code (every `minimllm/*.py`: a run executes far more of it than
  the function it calls, so any change counts), and
- a fingerprint of the weights the run starts from (the towers),

so a run is reused only when nothing it depends on has changed: an entry written by other code or
other towers is stale, ignored and counted. A run read from the cache prints the line a fresh run
prints, marked "cached", and `report()` says how many of a table's runs came from the file.
`MINIMLLM_FRESH=1` runs everything fresh (and still saves it).

    cache = RunCache("xattn", towers=(vision, lm))
    for seed in SEEDS:
        run = cache.run({"method": "A", "M": 9, "seed": seed, "steps": 1000},
                        lambda: fusion_run("A", 9, ..., seed=seed),
                        line=lambda r: f"A seed {seed}: accuracy {r['accuracy']:.3f}")
    print(cache.report())
"""

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from minimllm.utils import artifacts_dir, quick

__all__ = ["code_fingerprint", "weights_fingerprint", "RunCache"]

PACKAGE = Path(__file__).resolve().parent


def code_fingerprint(package: Path = PACKAGE) -> str:
    """A hash of every module of the package (names and sources), 16 hex digits."""
    digest = hashlib.sha256()
    for path in sorted(package.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def weights_fingerprint(*modules: torch.nn.Module) -> str:
    """A hash of the modules' parameters and buffers (names, shapes, values), 16 hex digits."""
    digest = hashlib.sha256()
    for module in modules:
        for name, tensor in module.state_dict().items():
            array = tensor.detach().to("cpu", torch.float32).contiguous().numpy()
            digest.update(f"{name}{tuple(array.shape)}".encode() + array.tobytes())
    return digest.hexdigest()[:16]


def _jsonable(settings: dict) -> str:
    if not isinstance(settings, dict) or not settings:
        raise TypeError(f"settings must be a non-empty dict of the run's settings, got "
                        f"{settings!r}")
    try:
        return json.dumps(settings, sort_keys=True, default=_number)
    except TypeError as e:
        raise TypeError(f"settings must hold JSON values (numbers, strings, lists, dicts): {e}") \
            from None


def _number(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    raise TypeError(f"{value!r} ({type(value).__name__}) is not a JSON value")


class RunCache:
    """The finished runs of one chapter's experiments, in `<artifacts>/<name>/runs.json` (a
    "-quick" folder in quick mode), keyed by settings, code and towers (see the module)."""

    def __init__(self, name: str, towers=(), path: str | Path | None = None):
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must name the experiment (a folder name), got {name!r}")
        folder = artifacts_dir() / (f"{name}-quick" if quick() else name)
        self.path = Path(path) if path is not None else folder / "runs.json"
        self.code = code_fingerprint()
        self.towers = weights_fingerprint(*towers) if towers else "none"
        self.fresh = os.environ.get("MINIMLLM_FRESH", "0") not in ("", "0")
        self.entries = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.cached = self.ran = 0
        self.start = time.perf_counter()

    def key(self, settings: dict) -> str:
        text = f"{_jsonable(settings)}|code={self.code}|towers={self.towers}"
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def stale(self) -> int:
        """Entries in the file written by other code or from other towers (never used)."""
        return sum((e["code"], e["towers"]) != (self.code, self.towers)
                   for e in self.entries.values())

    def run(self, settings: dict, fn, line=None):
        """The result of `fn()` for these settings: from the file when an entry matches (and
        `MINIMLLM_FRESH` is off), else computed and saved at once. `line(result)`, when given,
        is printed either way, after the seconds so far or after "cached"."""
        key = self.key(settings)
        entry = None if self.fresh else self.entries.get(key)
        if entry is not None:
            self.cached += 1
            result = entry["result"]
        else:
            result = fn()
            self.ran += 1
            self.entries[key] = {"settings": json.loads(_jsonable(settings)), "code": self.code,
                                 "towers": self.towers, "result": result}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.entries, default=_number))
            tmp.replace(self.path)  # never half-written
        if line is not None:
            where = "cached" if entry is not None else f"{time.perf_counter() - self.start:5.0f} s"
            print(f"[{where:>7}] {line(result)}", flush=True)
        return result

    def report(self) -> str:
        """How many runs came from the file and how many ran now (and the stale entries)."""
        total = self.cached + self.ran
        return (f"{total} runs: {self.cached} from the cache ({self.path}), {self.ran} run now"
                + (f"; {self.stale()} stale entries ignored" if self.stale() else "")
                + ("; MINIMLLM_FRESH=1: nothing read from the cache" if self.fresh else ""))
