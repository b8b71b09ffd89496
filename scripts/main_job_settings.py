"""The main job's settings measured: the vision encoder frozen against trained in stage 2.

    OMP_NUM_THREADS=1 python scripts/main_job_settings.py \
        --encoder frozen trained --n-train 24000 --stage2-steps 3000 --seeds 0 1

Runs `minimllm.captioning.main_job` once per (setting, seed), every other field of
`MainJobConfig` at its default (C-Abstractor, M = 9, layer -4, 100 stage-1 steps, 500 held-out
test images), and scores greedy captions of the held-out test split with `caption_accuracy`.
Each run saves its model under `--out-root` (never data/artifacts/mllm, the main job's own
folder) and appends its row (settings, seed, accuracy, seconds, test images) to a JSON cache: a
row already there is skipped, so an interrupted sweep loses nothing. At the end it prints one
markdown row per setting: the mean accuracy over the seeds and each seed's value. Chapter 05
section 14 quotes its table. Its runs took 10-21 minutes each on one core of a shared 2-core
machine.
"""

import argparse
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from run_cache import load_runs, save_run

from minimllm.captioning import MainJobConfig, main_job
from minimllm.utils import artifacts_dir


def run_key(settings: dict, seed: int) -> str:
    """One cache key per (settings, seed): the settings that differ between runs, and the seed."""
    return (f"encoder={'trained' if settings['train_vision'] else 'frozen'} "
            f"n_train={settings['n_train']} stage2_steps={settings['stage2_steps']} seed={seed}")


def run_one(config: MainJobConfig, seed: int, out_root: Path) -> dict:
    """One main-job run; its model goes to `out_root/<setting>-seed<k>`."""
    settings = asdict(config)
    name = run_key(settings, seed).replace(" ", "_").replace("=", "")
    metrics = main_job(out_dir=out_root / name, seed=seed, config=config)
    return {"key": run_key(settings, seed), "settings": settings, "seed": seed,
            "accuracy": metrics["accuracy"], "position": metrics["position"],
            "named": metrics["named"], "seconds": metrics["seconds"],
            "n_test": metrics["n_test"], "device": metrics["device"]}


def markdown_table(rows: list[dict]) -> str:
    """One line per setting: mean accuracy over its seeds, each seed's value, the spread (and
    the mean share of objects whose colour and shape the captions name, wherever placed)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        s = r["settings"]
        groups.setdefault((s["train_vision"], s["n_train"], s["stage2_steps"]), []).append(r)
    lines = ["| encoder | training images | stage-2 steps | accuracy: mean (per seed) | "
             "colour + shape named: mean | test images | seconds per run |",
             "|---|---|---|---|---|---|---|"]
    for (train_vision, n_train, steps), rs in sorted(groups.items()):
        rs = sorted(rs, key=lambda r: r["seed"])
        accs = [r["accuracy"] for r in rs]
        per_seed = ", ".join(f"seed {r['seed']}: {r['accuracy']:.3f}" for r in rs)
        spread = f"{min(accs):.3f}-{max(accs):.3f}"
        lines.append(f"| {'trained' if train_vision else 'frozen'} | {n_train:,} | {steps:,} | "
                     f"{np.mean(accs):.3f} ({per_seed}; {spread}) | "
                     f"{np.mean([r['named'] for r in rs]):.3f} | "
                     f"{', '.join(str(r['n_test']) for r in rs)} | "
                     f"{', '.join(str(round(r['seconds'])) for r in rs)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoder", nargs="+", choices=("frozen", "trained"),
                        default=["frozen", "trained"], help="the encoder in stage 2")
    parser.add_argument("--n-train", type=int, nargs="+", default=[24000],
                        help="training images")
    parser.add_argument("--stage2-steps", type=int, nargs="+", default=[3000],
                        help="stage-2 steps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--cache", type=Path,
                        default=artifacts_dir() / "main_job_settings.json",
                        help="JSON file of the rows measured so far")
    parser.add_argument("--out-root", type=Path, default=artifacts_dir() / "main_job_settings",
                        help="where each run saves its model")
    args = parser.parse_args()
    if any(n <= 0 for n in args.n_train + args.stage2_steps):
        parser.error("--n-train and --stage2-steps must be positive")

    configs = [MainJobConfig(train_vision=enc == "trained", n_train=n, stage2_steps=steps,
                             target_accuracy=None)
               for enc in args.encoder for n in args.n_train for steps in args.stage2_steps]
    # seed-major: a sweep cut short still compares every setting at the first seed
    todo = [(c, seed) for seed in args.seeds for c in configs]
    done = load_runs(args.cache)
    start = time.perf_counter()
    for i, (config, seed) in enumerate(todo, 1):
        key = run_key(asdict(config), seed)
        if key in done:
            print(f"[{i}/{len(todo)}] {key}: in the cache, skipped", flush=True)
            continue
        print(f"[{i}/{len(todo)}] {key}: running ({time.perf_counter() - start:.0f} s so far)",
              flush=True)
        row = run_one(config, seed, args.out_root)
        save_run(args.cache, key, row)
        print(f"[{i}/{len(todo)}] {key}: accuracy {row['accuracy']:.3f} on {row['n_test']} "
              f"test images in {row['seconds']:.0f} s", flush=True)
    runs = load_runs(args.cache)
    print(markdown_table([runs[run_key(asdict(c), seed)] for c, seed in todo
                          if run_key(asdict(c), seed) in runs]))


if __name__ == "__main__":
    main()
