"""Stage-2 recipes for the assistant, measured: chapter 07's main job with some settings changed.

    python scripts/assistant_sweep.py --name restated --seeds 0 1      # the defaults
    python scripts/assistant_sweep.py --name short --set answer_style=short \
        --set 'format_prompt=" answer briefly."' --seeds 0 1            # LLaVA-1.5's short answers
    python scripts/assistant_sweep.py --name vqa-heavy \
        --set 'mixture={"describe": 0.2, "vqa": 0.6, "conversation": 0.1, "text": 0.1}'
    python scripts/assistant_sweep.py --name colour-noise --colour-noise 0.3   # colour_noise.py
    python scripts/assistant_sweep.py --name question-noise --question-noise 0.15 \
        --cache data/checkpoints/assistant_sweeps/wordings.json   # question_noise.py
    python scripts/assistant_sweep.py --name text-restates --text-task restates  # text_pairs.py
    python scripts/assistant_sweep.py --name random-tower --tower random \
        --cache data/checkpoints/assistant_sweeps/towers.json   # another vision tower
    python scripts/assistant_sweep.py --name two-views --views two \
        --cache data/checkpoints/assistant_sweeps/views.json    # shape and colour in two views
    python scripts/assistant_sweep.py --table

The runs cached before the two views became the default (`views.json` aside) show the image
itself: repeat one with `--views one`.

Each run is `minimllm.assistant.main_job` with `AssistantConfig` fields replaced by `--set
FIELD=VALUE` (VALUE as JSON, else as a string), from the foundation LM and vision encoder in
data/checkpoints (never your own artifacts: the sweep compares recipes on one foundation). Its
model goes to runs/assistant_sweeps/<name>-s<seed>/ and its metrics (every benchmark of
`evaluate_assistant`, both blind baselines included) to the JSON cache, keyed by name and seed:
a run already there is skipped, so an interrupted sweep loses only the run in progress. At the
end one line per recipe in the cache: mean and per-seed values of each target beside the blind
baselines.
"""

import argparse
import json
import time
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
from run_cache import load_runs, save_run
from two_views import add_views_option, use_views

from minimllm.assistant import AssistantConfig, main_job
from minimllm.utils import checkpoints_dir

CACHE = checkpoints_dir() / "assistant_sweeps" / "stage2.json"
# --text-task: (fresh scenes with every pair, reply restates the caption); "both" is chapter 07's
TEXT_TASKS = {"both": (True, True), "all-pairs": (True, False), "restates": (False, True),
              "neither": (False, False)}


def parse_settings(pairs: list[str]) -> dict:
    """["stage2_steps=2000", 'mixture={"vqa": 1}'] -> {"stage2_steps": 2000, "mixture": {...}},
    refusing a field `AssistantConfig` does not have."""
    known = {f.name for f in fields(AssistantConfig)}
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in known:
            raise SystemExit(f"--set {pair!r}: write FIELD=VALUE with FIELD one of {sorted(known)}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def example_answer(config: AssistantConfig) -> str:
    """The recipe's answer to one colour question, as the training data writes it."""
    from minimllm.assistant import answer_text
    from minimllm.data import make_questions, sample_scene

    scene = sample_scene(np.random.default_rng(1), min_objects=2, max_objects=2)
    question = make_questions(scene, np.random.default_rng(0), ["color"])[0]
    return answer_text(scene, question, config.answer_style)


def summary(run: dict) -> dict:
    """The figures a recipe is judged by (issue targets), from one run's metrics."""
    pope = run["pope"]["adversarial"]
    return {"vqa": run["vqa_test"]["overall"], "min type": min(
                v for k, v in run["vqa_test"].items() if k != "overall"),
            "held-out phr.": run["vqa_heldout"]["overall"],
            "compositional": run["vqa_compositional"]["overall"],
            "caption": run["caption"]["accuracy"], "POPE F1": pope["f1"],
            "yes-ratio": pope["yes_ratio"], "prior": run["vqa_blind"]["answer prior"]["overall"],
            "no image": run["vqa_blind"]["no image"]["overall"]}


def table(runs: dict[str, dict]) -> str:
    by_name: dict[str, list[dict]] = {}
    for run in sorted(runs.values(), key=lambda r: r["seed"]):
        by_name.setdefault(run["name"], []).append(run)
    heads = list(summary(next(iter(runs.values()))))
    width = 19  # "0.944 (0.95/0.93)": the mean, then each seed
    lines = [f"{'recipe':>16} {'seeds':>5} " + " ".join(f"{h:>{width}}" for h in heads)]
    for name, rs in by_name.items():
        s = [summary(r) for r in rs]
        lines.append(f"{name:>16} {len(rs):>5} " + " ".join(
            f"{np.mean([x[h] for x in s]):.3f} ({'/'.join(f'{x[h]:.2f}' for x in s)})"
            .rjust(width) for h in heads))
    return "\n".join(lines)


def rescore(model_dir: Path, name: str, changes: dict, cache: Path) -> None:
    """Evaluate a saved assistant again (the benchmarks grew since it was trained): its training
    record (settings, seed, seconds, losses) is kept, every benchmark is measured anew."""
    from minimllm.assistant import evaluate_assistant
    from minimllm.chat import load_mllm
    from minimllm.data import load_dataset
    from minimllm.pretrained import load_metrics

    saved = load_metrics(model_dir)
    c = saved["settings"]
    model, processor = load_mllm(model_dir, device="cpu")
    dataset = load_dataset(n_train=c["n_train"], n_test=c["n_eval"], n_compositional=c["n_eval"])
    scenes = [{"objects": r["objects"], "defects": r["defects"]} for r in dataset["train"]]
    results = evaluate_assistant(model, processor, dataset, scenes, c["format_prompt"],
                                 saved["seed"])
    keep = {k: saved[k] for k in ("seconds", "settings", "seed", "device", "stage_losses")}
    save_run(cache, f"{name} seed={saved['seed']}",
             {"name": name, "changes": changes, "example_answer": example_answer(
                 AssistantConfig(**c)), **keep, **results, "rescored": True})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", required=True, help="the recipe's name in the cache")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="an AssistantConfig field to change (repeatable)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--out-root", type=Path, default=Path("runs") / "assistant_sweeps")
    parser.add_argument("--question-noise", type=float, default=0.0, metavar="P",
                        help="stage 2 drops each frame word of a visual question and puts in "
                             "another with probability P, replies kept (scripts/question_noise.py)")
    parser.add_argument("--colour-noise", type=float, default=0.0, metavar="P",
                        help="stage 2 swaps a colour word before a shape word in the input with "
                             "probability P, labels kept (scripts/colour_noise.py)")
    parser.add_argument("--text-task", choices=TEXT_TASKS, default="both",
                        help="the text task's changes kept (scripts/text_pairs.py): 'both' "
                             "(chapter 07: fresh scenes with every colour-shape pair, and a reply "
                             "that restates the caption), one of them, or 'neither'")
    parser.add_argument("--tower", default=None, metavar="DIR|random",
                        help="start from this vision tower folder instead of the reference "
                             "(colour_free_tower.py's), or 'random': the reference's architecture "
                             "with random weights (`random_tower`)")
    add_views_option(parser)
    parser.add_argument("--wordings", choices=("all", "half"), default="all",
                        help="'half': stage 2's questions in every other training wording of "
                             "each type (scripts/wordings.py)")
    parser.add_argument("--table", action="store_true", help="print the cache's table and stop")
    parser.add_argument("--evaluate", type=Path, metavar="MODEL_DIR",
                        help="score a model this script saved before (its recipe and seed from "
                             "its metrics.json) with today's evaluate_assistant, and cache it")
    args = parser.parse_args()
    if args.table:
        print(table(load_runs(args.cache)))
        return
    if args.evaluate:
        rescore(args.evaluate, args.name, parse_settings(args.set), args.cache)
        print(table(load_runs(args.cache)))
        return
    changes = {**parse_settings(args.set), **use_views(args.views)}
    config = AssistantConfig(**{**asdict(AssistantConfig()), **changes})
    if sum(map(bool, (args.colour_noise, args.question_noise, args.text_task != "both"))) > 1:
        parser.error("--colour-noise, --question-noise and the text task's changes are measured "
                     "one at a time")
    import minimllm.assistant

    if args.tower:
        from colour_free_tower import use_tower

        tower = random_tower() if args.tower == "random" else Path(args.tower)
        use_tower(tower)
        changes["vision tower"] = tower.name
    if args.colour_noise:
        from colour_noise import noisy_batches

        minimllm.assistant.InstructionBatches = noisy_batches(args.colour_noise)  # main_job's
        changes["colour_noise"] = args.colour_noise
    if args.question_noise:
        from question_noise import noisy_batches as question_noise_batches

        minimllm.assistant.InstructionBatches = question_noise_batches(args.question_noise)
        changes["question_noise"] = args.question_noise
    if args.text_task != "both":
        from text_pairs import text_batches

        minimllm.assistant.InstructionBatches = text_batches(*TEXT_TASKS[args.text_task])
        changes["text_task"] = args.text_task
    if args.wordings == "half":
        from wordings import use_fewer_wordings

        changes.update(use_fewer_wordings())
    run_seeds(args, changes, config, example_answer(config))


def random_tower(path: Path = Path("runs") / "towers" / "random") -> Path:
    """The reference vision tower's architecture with random weights (torch seed 0), saved once
    at `path`: a tower that has learned nothing about Shapes World's colour-shape pairs."""
    import torch

    from minimllm.vision import VisionTransformer, ViTConfig

    if not (path / "model.safetensors").exists():
        config = json.loads((checkpoints_dir() / "vision" / "config.json").read_text())
        torch.manual_seed(0)
        VisionTransformer(ViTConfig(**config)).save_pretrained(path, metrics={"weights": "random"})
    return path


def run_seeds(args, changes: dict, config: AssistantConfig, example: str) -> None:
    """`main_job` once per seed of `args.seeds` (a run in `args.cache` is skipped), each run's
    metrics cached under "<args.name> seed=<seed>" as soon as it ends; then the table."""
    start = time.perf_counter()
    for seed in args.seeds:
        key = f"{args.name} seed={seed}"
        if key in load_runs(args.cache):
            print(f"{key}: in the cache, skipped", flush=True)
            continue
        print(f"{key}: running ({time.perf_counter() - start:.0f} s so far)", flush=True)
        metrics = main_job(out_dir=args.out_root / f"{args.name}-s{seed}", seed=seed,
                           config=config, reference_towers=True)
        metrics.pop("out_dir", None)
        save_run(args.cache, key, {"name": args.name, "changes": changes,
                                   "example_answer": example, **metrics})
    print(table(load_runs(args.cache)))


if __name__ == "__main__":
    main()
