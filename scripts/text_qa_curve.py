"""How fast does the course's LM learn to answer questions about a scene given as text?

    python scripts/text_qa_curve.py [--steps 1500] [--lr 1e-3] [--seeds 0 1]

Chapter 07's assistant answers about as well from a caption in the message as from the image, so
its LM is the part to test. This script instruction-tunes the pretrained LM on text alone (the
"text" task of chapter 07's mixture: the scene's caption, a question, the format prompt; the loss
on the answer only) and scores greedy answers to 1,800 questions about 300 test scenes every
`--eval-every` steps: a learning curve per question type. Finished runs are cached in
data/artifacts/text_qa_curve.json (an interrupted run loses only itself); the table at the end
is the one chapter 07 quotes.
"""

import argparse
import json
import time

import numpy as np
import torch
from run_cache import load_runs, save_run

from minimllm.assistant import TEXT_QTYPES, InstructionBatches, chat_loss, text_turn
from minimllm.chat import FORMAT_PROMPT, ChatProcessor, chat
from minimllm.data import load_dataset, make_questions
from minimllm.evaluate import vqa_accuracy
from minimllm.mllm import MLLM, MLLMConfig, configure_stage, load_towers
from minimllm.train import TrainConfig, train
from minimllm.utils import artifacts_dir, seed_everything


def text_questions(test, n_scenes: int = 300) -> tuple[list, list, list]:
    """One question of each type a caption answers, for each of the first `n_scenes` scenes."""
    rng = np.random.default_rng(5)
    convs, truth, qtypes = [], [], []
    for row in test.select(range(n_scenes)):
        scene = {"objects": row["objects"]}
        for q in make_questions(scene, rng, list(TEXT_QTYPES)):
            convs.append([text_turn(scene, q["question"])])
            truth.append(q["answer"])
            qtypes.append(q["qtype"])
    return convs, truth, qtypes


def run(steps: int, lr: float, seed: int, eval_every: int, batch_size: int) -> dict:
    """One text-only tuning run from the pretrained LM; returns its learning curve."""
    start = time.perf_counter()
    seed_everything(seed)
    dataset = load_dataset(n_train=24000, n_test=500, n_compositional=10)
    scenes = [{"objects": r["objects"]} for r in dataset["train"]]
    vision, lm, tokenizer = load_towers(allow_random=False, device="cpu")
    # the MLLM wrapper only so that chapter 07's processor, batches and `chat` apply unchanged;
    # text-only batches never reach the vision encoder or the projector
    model = MLLM(MLLMConfig(projector="c_abstractor", num_image_tokens=9), vision=vision, lm=lm)
    processor = ChatProcessor(tokenizer, model.num_image_tokens, vision.config.image_size)
    convs, truth, qtypes = text_questions(dataset["test"])
    curve = []

    def evaluate(m, step: int) -> dict:
        """Greedy answers, scored per type (`train` calls it in eval mode, without gradients)."""
        scores = vqa_accuracy(chat(m, processor, convs, None), truth, qtypes)
        point = {"step": step, **{k: round(scores[k], 3) for k in ("overall", *TEXT_QTYPES)}}
        curve.append(point)
        print(json.dumps(point), flush=True)
        return {"text_qa": point["overall"]}

    with torch.no_grad():
        evaluate(model.eval(), 0)
    configure_stage(model, 2)  # the LM (and the projector, which text batches leave untouched)
    batches = InstructionBatches(processor, scenes, torch.zeros(len(scenes), 1), {"text": 1.0},
                                 batch_size, seed, FORMAT_PROMPT)
    history = train(model, chat_loss, batches,
                    TrainConfig(steps=steps, lr=lr, warmup_steps=max(1, steps // 10), seed=seed,
                                device="cpu", eval_every=eval_every, log_every=50),
                    eval_fn=lambda m: evaluate(m, min(len(curve) * eval_every, steps)))
    return {"steps": steps, "lr": lr, "seed": seed, "batch_size": batch_size, "curve": curve,
            "final_loss": round(float(np.mean(history.losses[-50:])), 4),
            "seconds": round(time.perf_counter() - start)}


def run_key(steps: int, lr: float, seed: int, batch_size: int) -> str:
    return f"steps={steps} lr={lr:g} seed={seed} batch_size={batch_size}"


def table(rows: list[dict]) -> str:
    """Markdown: accuracy at each evaluation step (mean, min-max over seeds) per learning rate."""
    lines = []
    for lr in sorted({r["lr"] for r in rows}):
        runs = [r for r in rows if r["lr"] == lr]
        lines += [f"\nlr {lr:g}, seeds {sorted(r['seed'] for r in runs)}",
                  "| step | overall | " + " | ".join(TEXT_QTYPES) + " |",
                  "|---" * (len(TEXT_QTYPES) + 2) + "|"]
        for k, point in enumerate(runs[0]["curve"]):
            cells = []
            for key in ("overall", *TEXT_QTYPES):
                xs = [r["curve"][k][key] for r in runs if len(r["curve"]) > k]
                cells.append(f"{np.mean(xs):.3f} ({min(xs):.3f}-{max(xs):.3f})")
            lines.append(f"| {point['step']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--lr", type=float, nargs="+", default=[1e-3])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cache = artifacts_dir() / "text_qa_curve.json"
    wanted = []
    for lr in args.lr:
        for seed in args.seeds:
            key = run_key(args.steps, lr, seed, args.batch_size)
            wanted.append(key)
            if key in load_runs(cache):
                print(f"cached: steps {args.steps}, lr {lr:g}, seed {seed}")
                continue
            print(f"running: steps {args.steps}, lr {lr:g}, seed {seed}", flush=True)
            save_run(cache, key, run(args.steps, lr, seed, args.eval_every, args.batch_size))
    runs = load_runs(cache)
    print(table([runs[k] for k in wanted if k in runs]))


if __name__ == "__main__":
    main()
