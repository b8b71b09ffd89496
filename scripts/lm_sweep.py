"""Which language model learns to read? Pretraining runs of the course's LM, scored on text QA.

    python scripts/lm_sweep.py --dim 128 --layers 4 --heads 4 --kv-heads 2 --steps 4000 --seeds 0 1
    python scripts/lm_sweep.py --table          # the table of every cached run

Each run trains chapter 01's tokenizer and LM from scratch on `text_corpus` (a caption, then one
question of every type the caption answers, each with its answer) and, every `--eval-every`
steps, scores greedy answers to questions about 600 scenes that no training text describes
(text QA: the caption as text, then the question; exact match), in the training phrasings and in
the held-out phrasings that no training text uses. The curve is kept per question type, with the
seconds spent training, so that accuracy can be read against compute. Finished runs are cached
in a JSON file (default data/artifacts/lm_sweep.json), keyed by every setting; an interrupted
sweep loses only the run in progress.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from run_cache import checkpoint_at, load_runs, save_run

from minimllm.lm import READING_QTYPES as QTYPES
from minimllm.lm import PretrainConfig, pretrain
from minimllm.utils import artifacts_dir, count_parameters


def settings_key(s: dict) -> str:
    return " ".join(f"{k}={s[k]}" for k in sorted(s))


class TimeUp(Exception):
    """Raised after an evaluation once a run has used its time limit."""


def run(s: dict, device: str, time_limit: float = float("inf"), partial: Path | None = None,
        save: Path | None = None) -> dict:
    """One pretraining run (`minimllm.lm.pretrain`) with settings `s`; returns its curve."""
    start = time.perf_counter()
    config = PretrainConfig(dim=s["dim"], n_layers=s["layers"], n_heads=s["heads"],
                            n_kv_heads=s["kv_heads"], steps=s["steps"], lr=s["lr"],
                            batch_size=s["batch_size"], seq_len=s["seq_len"],
                            n_scenes=s["scenes"], rounds=s["rounds"], placed=s.get("placed"),
                            aligned=s["aligned"], eval_every=s["eval_every"], seed=s["seed"],
                            corpus_seed=s.get("corpus_seed", 0),
                            shuffled=s.get("shuffled", False),
                            reasoned=s.get("reasoned", False))
    init = None
    if s.get("init"):  # a second phase: go on training a saved LM
        from minimllm.lm import LanguageModel
        from minimllm.pretrained import load_tokenizer
        folder, _, commit = s["init"].partition(" at commit ")  # "FOLDER at commit X (...)"
        if commit:
            folder = checkpoint_at(folder, commit.split()[0])
        init = (LanguageModel.from_pretrained(folder), load_tokenizer(folder))
    kept = {"curve": []}

    def on_eval(curve):
        kept["curve"] = curve
        point = curve[-1]
        print(json.dumps({"key": s["name"], "step": point["step"],
                          "train_s": point["train_seconds"],
                          "train": point["train"]["overall"],
                          "heldout": point["heldout"]["overall"],
                          **{q: point["train"].get(q) for q in QTYPES}}), flush=True)
        if partial is not None:
            partial.write_text(json.dumps({**s, "curve": curve}) + "\n")
        if time.perf_counter() - start > time_limit:
            raise TimeUp

    final_loss, params = None, None
    try:
        model, tokenizer, history, _ = pretrain(config, device, on_eval=on_eval, init=init)
        final_loss = round(float(np.mean(history.losses[-50:])), 4)
        params = count_parameters(model)
        if save is not None:
            model.cpu().save_pretrained(save, tokenizer, metrics={"curve": kept["curve"]})
    except TimeUp:  # a time-limited run keeps the curve it has
        pass
    return {**s, "params": params, "curve": kept["curve"], "final_loss": final_loss,
            "complete": final_loss is not None, "seconds": round(time.perf_counter() - start),
            "device": device}


def table(runs: list[dict]) -> str:
    lines = ["| run | params | steps | train s | text QA | held-out | " + " | ".join(QTYPES)
             + " |", "|---" * (6 + len(QTYPES)) + "|"]
    for r in sorted(runs, key=lambda r: (r["name"], r["seed"])):
        last = r["curve"][-1]
        params = (r.get("params") or 0) / 1e6
        lines.append(f"| {r['name']} s{r['seed']} | {params:.2f}M | {last['step']} | "
                     f"{last['train_seconds']:.0f} | {last['train']['overall']:.3f} | "
                     f"{last['heldout']['overall']:.3f} | "
                     + " | ".join(f"{last['train'].get(q, float('nan')):.2f}" for q in QTYPES)
                     + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", default=None, help="the run's label (default: from its size)")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--scenes", type=int, default=60000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--more", nargs="+", default=[], metavar="TYPE=N",
                        help="ask these question types N times per text (the rest: --rounds)")
    parser.add_argument("--corpus-seed", type=int, default=0)
    parser.add_argument("--shuffled", action="store_true",
                        help="captions name the objects in a random order")
    parser.add_argument("--init", default=None,
                        help="go on training the LM saved there (a second phase); "
                             "'FOLDER at commit X (note)': that folder as commit X shipped it")
    parser.add_argument("--reasoned", action="store_true",
                        help="relation answers state both positions first (text_corpus)")
    parser.add_argument("--placed", type=float, default=None,
                        help="share of captions that place every object (default: as any style)")
    parser.add_argument("--save", type=Path, default=None,
                        help="save the trained LM there ({seed} is replaced)")
    parser.add_argument("--unaligned", action="store_true", help="windows start anywhere")
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--table", action="store_true", help="print the cached runs and stop")
    parser.add_argument("--time-limit", type=float, default=float("inf"),
                        help="seconds: stop at the first evaluation past it, keep the curve")
    parser.add_argument("--partial", type=Path, default=None,
                        help="rewrite the curve so far to this file after every evaluation")
    args = parser.parse_args()
    cache = args.cache or artifacts_dir() / "lm_sweep.json"
    if args.table:
        print(table(list(load_runs(cache).values())))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    for seed in args.seeds:
        s = {"dim": args.dim, "layers": args.layers, "heads": args.heads,
             "kv_heads": args.kv_heads, "steps": args.steps, "lr": args.lr,
             "batch_size": args.batch_size, "seq_len": args.seq_len, "scenes": args.scenes,
             "rounds": args.rounds, "aligned": not args.unaligned,
             **({"placed": args.placed} if args.placed is not None else {}),
             **({"corpus_seed": args.corpus_seed} if args.corpus_seed else {}),
             **({"shuffled": True} if args.shuffled else {}),
             **({"reasoned": True} if args.reasoned else {}),
             **({"init": str(args.init)} if args.init is not None else {}),
             "eval_every": args.eval_every, "seed": seed}
        if args.more:
            more = {t: int(n) for t, n in (m.split("=") for m in args.more)}
            s["rounds"] = {**dict.fromkeys(QTYPES, args.rounds), **more}
        s["name"] = args.name or f"{args.dim}x{args.layers} h{args.heads}/{args.kv_heads}"
        key = settings_key(s)
        if key in load_runs(cache):
            print(f"cached: {key}")
            continue
        print(f"running: {key}", flush=True)
        save = Path(str(args.save).format(seed=seed)) if args.save else None
        save_run(cache, key, run(s, args.device, args.time_limit, args.partial, save))
    print(table(list(load_runs(cache).values())))


if __name__ == "__main__":
    main()
