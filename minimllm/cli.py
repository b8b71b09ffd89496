"""The `minimllm` command (hand-written; no chapter teaches it).

    minimllm env                 environment report (versions, device, bf16, bitsandbytes)
    minimllm demo                environment check, data preview, then the main job (the assistant)
    minimllm assistant           the main job: chapter 07's assistant, trained and measured
    minimllm train               chapter 05's job: train the captioner on Shapes World
    minimllm train --preset gpu  chapter 08: a bigger assistant, QLoRA-style, on one CUDA GPU
    minimllm chat --image PATH "question"   ask the trained assistant about an image (no question:
                                            one per line, the model loaded once)
    minimllm export MODEL_DIR OUT_DIR       a saved MLLM as a transformers folder (LLaVA, or
                                            custom code that trust_remote_code=True loads)
    minimllm grade NOTEBOOK      grade an exercise notebook
    minimllm checkpoints         train the reference checkpoints into data/checkpoints/

`python -m minimllm ...` is the same command; on several processes:
`torchrun --standalone --nproc_per_node 2 -m minimllm train`.
"""

from __future__ import annotations

import argparse
import sys
import time

from minimllm.utils import quick


def cmd_env(args) -> int:
    from minimllm.utils import environment_report

    for key, value in environment_report().items():
        print(f"{key:>20}: {value}")
    return 0


def cmd_demo(args) -> int:
    """The environment check, a preview of Shapes World, then the main job: chapter 07's
    assistant (`cmd_assistant`)."""
    import matplotlib

    matplotlib.use("Agg")
    from minimllm import data
    from minimllm.utils import artifacts_dir, show_images

    start = time.time()
    cmd_env(args)
    ds = data.build_dataset(n_train=8, n_validation=8, n_test=8, n_compositional=8)
    print(f"\nShapes World: {', '.join(f'{k} {len(v)}' for k, v in ds.items())} "
          f"(built in {time.time() - start:.1f} s)")
    rows = ds["test"].select(range(8))
    for row in rows:
        print(f"  {row['caption']!r:60}  Q: {row['question']}  A: {row['answer']}")
    out = artifacts_dir() / "demo_shapes_world.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig = show_images([r["image"] for r in rows],
                      titles=[f"{r['question']}\n{r['answer']}" for r in rows],
                      ncols=4, size=2.4)
    fig.savefig(out, dpi=100)
    print(f"\npreview saved to {out}\n")
    return cmd_assistant(args)


def cmd_train(args) -> int:
    """Chapter 05's job: a LLaVA-style captioner aligned and tuned on Shapes World from the
    pretrained towers; prints the held-out caption accuracy, exits non-zero below its target.
    `--preset gpu`: chapter 08's bigger assistant, pretrained and tuned QLoRA-style."""
    from minimllm.captioning import main_job

    if getattr(args, "preset", "cpu") == "gpu":
        from minimllm.finetune import gpu_job
        from minimllm.utils import get_device

        if get_device().type != "cuda" and not (args.quick or args.force):
            raise SystemExit("minimllm train --preset gpu: no CUDA GPU here, and the preset "
                             "(chapter 08's bigger assistant) takes about a day on a 2-core "
                             "CPU. Use --quick (or MINIMLLM_QUICK=1) to check the code path, "
                             "or --force to run it here anyway.")
        gpu_job(quick=args.quick, seed=args.seed)
        return 0
    metrics = main_job(quick=args.quick, seed=args.seed)
    # below the target accuracy: a failure the shell can see (under torchrun, rank 0 judges)
    return 0 if metrics.get("passed", True) else 1


def cmd_assistant(args) -> int:
    """The main job, chapter 07's assistant: stage 1 + instruction tuning from the pretrained
    towers; prints one line per target (VQA, each type, held-out phrasings, unseen pairs,
    captions, POPE F1 and yes-ratio) with its blind baselines, and exits non-zero below one.
    The model goes to data/artifacts/assistant, where `minimllm chat` finds it."""
    from minimllm.assistant import main_job

    metrics = main_job(quick=args.quick, seed=args.seed)
    return 0 if metrics["passed"] else 1


def cmd_chat(args) -> int:
    """Questions about one image (PNG, JPEG, ... of any size and mode) to a trained model, Method
    A or B: the question given, else one per line from the keyboard (the model loads once; an
    empty line or end of input stops)."""
    from PIL import Image, UnidentifiedImageError

    from minimllm.chat import chat, image_turn, load_mllm
    from minimllm.pretrained import find_pretrained

    try:
        image = Image.open(args.image)
        image.load()
    except (FileNotFoundError, IsADirectoryError, UnidentifiedImageError, OSError) as error:
        raise SystemExit(f"cannot read the image {args.image!r} ({type(error).__name__}: {error}): "
                         "give a PNG or JPEG file") from None
    image = image.convert("RGB")
    path = args.model or find_pretrained("assistant")
    try:
        model, processor = load_mllm(path, device="cpu")
    except ValueError as error:  # another kind of model, or a config that is not an MLLM's
        raise SystemExit(f"minimllm chat: {error}") from None
    suffix = args.format_prompt if args.format_prompt is not None else trained_format_prompt(path)

    def answer(question: str) -> str:
        conversation = [image_turn(question + suffix)]
        # no more new tokens than the context has room for after the prompt
        room = model.lm.config.max_seq_len - len(
            processor.tokenize(conversation, add_generation_prompt=True)[0])
        return chat(model, processor, [conversation], [image],
                    max_new_tokens=max(0, min(args.max_new_tokens, room)))[0]

    if args.question is not None:
        print(answer(args.question))
        return 0
    print(f"{path}: questions about {args.image}, one per line (an empty line ends)")
    while True:
        try:
            question = input("> ").strip()
        except EOFError:
            break
        if not question:
            break
        print(answer(question), flush=True)
    return 0


def trained_format_prompt(path) -> str:
    """The format prompt a saved assistant was tuned with (its metrics.json settings), else ""."""
    from minimllm.pretrained import load_metrics

    try:
        return load_metrics(path).get("settings", {}).get("format_prompt", "") or ""
    except (FileNotFoundError, ValueError):
        return ""


def cmd_export(args) -> int:
    """A saved MLLM as a transformers folder (`minimllm.export.save_transformers`): Method A ->
    LlavaForConditionalGeneration (linear, MLP projector) or MiniMLLMForConditionalGeneration
    (every other projector), Method B -> MiniMLLMCrossAttentionForConditionalGeneration (custom
    code in the folder, loaded with `trust_remote_code=True`), with a processor with which
    pipeline("image-text-to-text") answers as `minimllm chat`. Checks that the written model
    gives the same logits as ours."""
    import json
    from pathlib import Path

    from tqdm.auto import tqdm

    from minimllm import export
    from minimllm.chat import load_mllm

    steps = tqdm(total=3, desc="export", unit="step")
    try:
        steps.set_postfix_str("loading")
        model, processor = load_mllm(args.model_dir, device="cpu")
        format_prompt = trained_format_prompt(args.model_dir)
        steps.update()
        steps.set_postfix_str("converting and writing")
        out = export.save_transformers(model, processor.tokenizer, args.out_dir,
                                       format_prompt=format_prompt)
        steps.update()
        steps.set_postfix_str("checking")
        gap = export_gap(model, out)
        steps.update()
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"minimllm export: {error}") from None
    finally:
        steps.close()
    kind = json.loads((Path(out) / "config.json").read_text())["architectures"][0]
    print(f"{args.model_dir} -> {out} ({kind}); largest logit difference on a test input: "
          f"{gap:.1e}")
    if export.needs_remote_code(model):
        print("  the folder holds its own model code: load it with trust_remote_code=True")
    if format_prompt:
        print(f"  tuned with the format prompt {format_prompt!r}: append it to each question, as "
              "`minimllm chat` does")
    return 0 if gap < 1e-3 else 1  # float rounding only


def export_gap(model, folder) -> float:
    """Largest |logit difference| between our model and the folder's transformers model on one
    random image and prompt."""
    import torch
    from transformers import AutoModelForImageTextToText

    from minimllm.export import needs_remote_code

    hf = AutoModelForImageTextToText.from_pretrained(
        folder, trust_remote_code=needs_remote_code(model), local_files_only=True).eval()
    g = torch.Generator().manual_seed(0)
    S = model.config.vision.image_size
    pixels = torch.rand(1, 3, S, S, generator=g) * 2 - 1
    n = model.tokens_per_image
    text = torch.randint(10, model.config.lm.vocab_size, (1, 8), generator=g)
    ids = torch.cat([torch.full((1, n), model.config.image_token_id), text], dim=1)
    with torch.no_grad():
        ours = model(ids, pixels).logits
        theirs = hf(input_ids=ids, pixel_values=pixels).logits
    return float((ours - theirs).abs().max())


def cmd_grade(args) -> int:
    from minimllm.grading import grade

    try:
        report = grade(args.notebook, source=args.source, timeout=args.timeout)
    except ValueError as error:  # an unreadable notebook, no check cells, a bad timeout
        raise SystemExit(f"minimllm grade: {error}") from None
    print(report.summary())
    return 0 if report.score == report.total else 1


# The reference checkpoints, in the order they are built: (name, "module:function").
CHECKPOINTS = (
    ("lm", "minimllm.lm:train_reference"),  # chapter 01: tokenizer + language model
    ("vision", "minimllm.contrastive:train_reference"),  # chapter 03: SigLIP-pretrained ViT
    ("assistant", "minimllm.assistant:train_reference"),  # chapter 07: the main job's model
)


def cmd_checkpoints(args) -> int:
    import importlib

    from minimllm.utils import artifacts_dir

    names = args.only or [name for name, _ in CHECKPOINTS]
    unknown = set(names) - {name for name, _ in CHECKPOINTS}
    if unknown:
        raise SystemExit(f"unknown checkpoint(s) {sorted(unknown)}: "
                         f"choose from {[n for n, _ in CHECKPOINTS]}")
    from tqdm.auto import tqdm

    chosen = [(name, target) for name, target in CHECKPOINTS if name in names]
    for name, target in tqdm(chosen, desc="checkpoints", unit="model"):
        module, function = target.split(":")
        start = time.time()
        print(f"== training the reference {name} checkpoint ({target})")
        # a quick (smoke-test) run never overwrites the committed references
        out_dir = artifacts_dir() / "quick-checkpoints" / name if args.quick else None
        out = getattr(importlib.import_module(module), function)(out_dir=out_dir, quick=args.quick)
        print(f"== {name}: saved to {out} in {time.time() - start:.0f} s")
    return 0


# Every command with what it does and an example (shown by `minimllm --help` and each
# command's own --help).
COMMANDS = {
    "env": ("environment report (versions, device, bf16, bitsandbytes)", "minimllm env"),
    "demo": ("environment check, data preview, then the main job (the assistant)",
             "minimllm demo --quick"),
    "train": ("chapter 05: train the captioner, report its accuracy", "minimllm train --quick"),
    "assistant": ("the main job: train and evaluate chapter 07's assistant",
                  "minimllm assistant --quick"),
    "chat": ("ask a trained assistant a question about an image",
             'minimllm chat --image my_scene.png "how many objects are there?"'),
    "export": ("a saved MLLM as a transformers folder (LLaVA, or custom code that "
               "trust_remote_code=True loads)",
               "minimllm export data/artifacts/assistant data/artifacts/assistant-hf"),
    "grade": ("grade an exercise notebook", "minimllm grade exercises/01_language_model.ipynb"),
    "checkpoints": ("train the reference checkpoints into data/checkpoints/",
                    "minimllm checkpoints --only lm vision"),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one sub-command per entry of `COMMANDS`, each with its example."""
    examples = "\n".join(f"  {example}" for _, example in COMMANDS.values())
    parser = argparse.ArgumentParser(
        prog="minimllm", description="a multimodal LLM built from scratch",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(f"examples (one per command; `minimllm COMMAND --help` for its options):\n"
                f"{examples}\n\n`python -m minimllm ...` is the same; on several processes:\n"
                "  torchrun --standalone --nproc_per_node 2 -m minimllm train"))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func):
        text, example = COMMANDS[name]
        p = sub.add_parser(name, help=text, description=text, epilog=f"example:\n  {example}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        return p

    command("env", cmd_env)
    for name, func in (("demo", cmd_demo), ("train", cmd_train), ("assistant", cmd_assistant)):
        p = command(name, func)
        p.add_argument("--quick", action="store_true", help="a few steps only (a smoke test)")
        p.add_argument("--seed", type=int, default=0)
        if name == "train":
            p.add_argument("--preset", choices=("cpu", "gpu"), default="cpu",
                           help="cpu: the captioner of chapter 05 (default); gpu: chapter 08's "
                                "bigger assistant with an NF4 LM and LoRA on one CUDA GPU")
            p.add_argument("--force", action="store_true",
                           help="run the gpu preset even without a CUDA GPU (very slow)")
    q = command("chat", cmd_chat)
    q.add_argument("question", nargs="?", default=None,
                   help='e.g. "what colour is the circle?" (none: ask one per line)')
    q.add_argument("--image", required=True, help="a PNG or JPEG file (any size; resized)")
    q.add_argument("--model", help="a saved assistant (default: data/artifacts/assistant, "
                                   "else data/checkpoints/assistant)")
    q.add_argument("--max-new-tokens", type=int, default=96,
                   help="room for a description, the question and a reasoned answer")
    q.add_argument("--format-prompt", default=None,
                   help="appended to each question (default: the one the model was tuned with, "
                        'from its metrics.json; "" for none, e.g. for "describe the image.")')
    e = command("export", cmd_export)
    e.add_argument("model_dir", help="a model saved with save_pretrained (its tokenizer beside it)")
    e.add_argument("out_dir", help="the transformers folder to write (replaced if it exists)")
    g = command("grade", cmd_grade)
    g.add_argument("notebook")
    g.add_argument("--source", help="the instructor's notebook (default: solutions/<same name>)")
    g.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    c = command("checkpoints", cmd_checkpoints)
    c.add_argument("--quick", action="store_true",
                   help="a few steps only (for testing the command)")
    c.add_argument("--only", nargs="+", metavar="NAME",
                   help="build only these (lm, vision, assistant)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if hasattr(args, "quick"):  # MINIMLLM_QUICK=1 and --quick mean the same thing everywhere
        args.quick = args.quick or quick()
    try:
        return args.func(args)
    except FileNotFoundError as error:  # a missing file or folder: the message says which
        raise SystemExit(f"minimllm {args.command}: {error}") from None


if __name__ == "__main__":
    sys.exit(main())
