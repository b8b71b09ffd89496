"""Benchmark: the course's training steps and cached generation against their transformers twins,
beside the machine's measured fp32 matrix-multiply peak.

    .venv/bin/python scripts/bench_mllm.py [--repeats 5] [--compile] [--quick]

Rows (each on fixed batches, built once):
- `lm`: chapter 01's language model (the reference's shape, random weights), a training step on a
  (16, 128) batch of random tokens;
- `captioner`: chapter 05's main job, a stage-2 step (its batch of 32 captions, its trainable set:
  projector, LM and the encoder's first block);
- `assistant`: chapter 07's main job, a stage-2 step, averaged over 8 batches drawn as the job
  draws them (one task per batch, from its mixture), with the job's loss (`chat_loss` over
  `AssistantConfig.length_buckets` groups of rows of similar length) and, as `padded`, over the
  one padded batch that the twin gets too;
- `captioner generate` / `assistant generate`: greedy generation with the KV cache, 8 prompts,
  32 new tokens (end of sequence ignored, so both sides write as many).
Each row is timed for minimllm (`ours`), for its transformers twin
(`minimllm.export.to_transformers` or `minimllm.lm.to_transformers`: same weights, logits checked
equal before timing) and, with
`--compile`, for minimllm under `torch.compile` (its compile time is printed apart); with
`--levers`, the assistant's step also with torch's fused AdamW and with its convolution weights
stored channels-last. The set-ups
take turns, repeat after repeat, so a noisy machine slows them alike; medians are reported.

Columns: ms per step; GFLOP per step (`torch.utils.flop_counter`: the matrix multiplies and
attention of forward and backward, the count every FLOP/s figure here uses); achieved GFLOP/s;
that as a share of the peak; the twin's time over ours (> 1: ours is faster).

The towers are the shipped references (data/checkpoints); `--quick` uses small random models and
one repeat, to check the script in seconds (CI does).
"""

import argparse
import functools
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def matmul_peak(n: int = 1024, seconds: float = 1.0) -> float:
    """The machine's fp32 matrix-multiply rate in GFLOP/s: (n, n) @ (n, n), best of a second's
    worth of runs, with torch's default threads."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm up
    best, end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def count_flops(fn: Callable[[], None]) -> int:
    """FLOPs of one call of `fn` (forward and backward when it trains)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@dataclass
class Row:
    """One benchmark row: a function per set-up ("ours", "transformers", "compiled"), each
    running one step (or one generation) on the row's fixed inputs."""

    name: str
    fns: dict[str, Callable[[], None]]
    steps_per_call: int = 1
    flops: dict[str, int] = field(default_factory=dict)
    times: dict[str, list[float]] = field(default_factory=dict)


def train_step(model: torch.nn.Module, loss_fn: Callable, batches: list[dict],
               fused: bool = False) -> Callable:
    """A function that runs one AdamW step (as `minimllm.train.train` does: zero_grad, forward,
    backward, clip at 1.0, step) per batch in `batches`; `fused`: torch's fused AdamW kernel."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5, betas=(0.9, 0.95), fused=fused or None)

    def run():
        for batch in batches:
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model, batch).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
    return run


def twin_loss(model, batch: dict) -> torch.Tensor:
    """transformers' models take the same tensors by keyword."""
    return model(**batch).loss


def match_trainable(ours: torch.nn.Module, twin: torch.nn.Module, convert: Callable) -> None:
    """Give the twin ours' trainable set. Names differ between the two (SigLIP's vision tower,
    LLaVA's prefixes), values do not: a copy of ours with every parameter drawn at random (so no
    two are equal, as LayerNorm's ones could be) is converted with `convert`, and a twin
    parameter trains when it equals one that trains in the copy."""
    import copy

    probe = copy.deepcopy(ours)
    with torch.no_grad():
        for p in probe.parameters():
            p.copy_(torch.randn_like(p))
    trained = [p.detach() for p in probe.parameters() if p.requires_grad]
    names = {name for name, p in convert(probe).named_parameters()
             if any(p.shape == q.shape and torch.equal(p.detach(), q) for q in trained)}
    for name, p in twin.named_parameters():
        p.requires_grad_(name in names)


def n_trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def mllm_setup(kind: str, quick: bool):
    """(model in its stage-2 trainable set, the job's fixed training batches) for
    kind "captioner" (chapter 05's main job) or "assistant" (chapter 07's)."""
    from minimllm.assistant import AssistantConfig, InstructionBatches
    from minimllm.captioning import CaptionBatches, MainJobConfig, caption_examples
    from minimllm.chat import ChatProcessor
    from minimllm.data import load_dataset
    from minimllm.lm import LanguageModel, LMConfig
    from minimllm.mllm import MLLM, MLLMConfig, MLLMProcessor, load_towers, stage_plan
    from minimllm.pretrained import load_tokenizer
    from minimllm.utils import checkpoints_dir
    from minimllm.vision import VisionTransformer, ViTConfig, to_pixel_values

    c = (AssistantConfig.quick() if quick else AssistantConfig()) if kind == "assistant" else (
        MainJobConfig.quick() if quick else MainJobConfig())
    if quick:  # small random towers, the reference tokenizer
        tokenizer = load_tokenizer(checkpoints_dir() / "lm")
        vision = VisionTransformer(ViTConfig(hidden_size=32, num_heads=2, intermediate_size=64))
        lm = LanguageModel(LMConfig(vocab_size=len(tokenizer), dim=32, n_heads=2, n_kv_heads=1,
                                    ffn_dim=64, max_seq_len=512))
    else:
        vision, lm, tokenizer = load_towers(device=torch.device("cpu"), reference=True)
    # the assistant: the model its job builds (two views of each image, `AssistantConfig.views`)
    model = c.build_model(vision, lm) if kind == "assistant" else MLLM(
        MLLMConfig(projector=c.projector, num_image_tokens=c.num_image_tokens,
                   vision_feature_layer=c.vision_feature_layer), vision=vision, lm=lm)
    stage_plan(c.train_vision)[1](2)(model)  # stage 2's trainable set
    train = load_dataset(n_train=256 if not quick else 64, n_test=16)["train"]
    processor = (MLLMProcessor if kind == "captioner" else ChatProcessor).for_model(model,
                                                                                   tokenizer)
    if kind == "captioner":
        batches = CaptionBatches(processor, caption_examples(train), batch_size=c.batch_size)
        batches = [batches(100_000 * 2)]  # the job's first stage-2 batch
    else:
        scenes = [{"objects": r["objects"], "defects": r["defects"]} for r in train]
        pixels = to_pixel_values([r["image"].convert("RGB") for r in train])
        draw = InstructionBatches(processor, scenes, pixels, c.mixture, c.batch_size, seed=2,
                                  format_prompt=c.format_prompt, answer_style=c.answer_style)
        batches = [draw(step) for step in range(8 if not quick else 2)]
    return model, batches


def channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` whose 4-D weights (the projector's convolutions, the patch embedding) are
    stored channels-last, the layout oneDNN's convolutions compute in."""
    import copy

    return copy.deepcopy(model).to(memory_format=torch.channels_last)


def twin_batch(batch: dict) -> dict:
    """Our batch as LLaVA's forward takes it (a text-only batch has no pixel_values)."""
    return {k: v for k, v in batch.items() if k in ("input_ids", "pixel_values", "labels")}


def check_twin(model, twin, batch: dict, tolerance: float = 1e-3) -> float:
    """The largest logit gap between ours and the twin on `batch` (an error above `tolerance`)."""
    with torch.no_grad():
        model.eval(), twin.eval()
        a = model(batch["input_ids"], batch.get("pixel_values")).logits
        b = twin(**{k: v for k, v in twin_batch(batch).items() if k != "labels"}).logits
        model.train(), twin.train()
    gap = (a - b).abs().max().item()
    if gap > tolerance:
        raise RuntimeError(f"the twin's logits differ from ours by {gap:.2e}: not the same model")
    return gap


def generation_fns(model, twin, batch: dict, new_tokens: int) -> dict:
    """Greedy generation of `new_tokens` tokens after the prompt part of the first 8 rows of a
    training batch (their first image-and-text turn, cut to the shortest so the prompts have
    equal length), for ours and the twin."""
    rows = min(8, batch["input_ids"].shape[0])
    prompt_len = int((batch["labels"][:rows] != -100).int().argmax(1).min())
    ids = batch["input_ids"][:rows, :prompt_len]
    pixels = batch["pixel_values"][:rows]  # one image per row, in its first turn

    def ours():
        with torch.no_grad():
            out = model.generate(ids, pixels, max_new_tokens=new_tokens, eos_token_id=None)
        assert out.shape[1] == new_tokens, out.shape

    def theirs():
        with torch.no_grad():
            out = twin.generate(input_ids=ids, pixel_values=pixels,
                                attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                                min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
        assert out.shape[1] == prompt_len + new_tokens, out.shape
    return {"ours": ours, "transformers": theirs}


def build_rows(args) -> list[Row]:
    from minimllm.assistant import AssistantConfig, chat_loss
    from minimllm.export import to_transformers
    from minimllm.lm import LanguageModel, LMConfig
    from minimllm.lm import to_transformers as lm_to_transformers
    from minimllm.utils import checkpoints_dir

    rows = []
    torch.manual_seed(0)
    lm_config = LanguageModel.from_pretrained(checkpoints_dir() / "lm").config if not args.quick \
        else LMConfig(vocab_size=128, dim=32, n_layers=2, n_heads=2, n_kv_heads=1, ffn_dim=64,
                      max_seq_len=64)
    lm = LanguageModel(lm_config)  # the reference LM's shape, random weights
    lm_twin = lm_to_transformers(lm).train()
    shape = (16, 128) if not args.quick else (2, 16)
    x = torch.randint(0, lm_config.vocab_size, shape)
    lm_batches = [{"input_ids": x, "labels": x}]
    fns = {"ours": train_step(lm, chat_loss, lm_batches),  # LanguageModel(ids, None, labels=)
           "transformers": train_step(lm_twin, twin_loss, lm_batches)}
    if args.compile:
        fns["compiled"] = train_step(torch.compile(lm), chat_loss, lm_batches)
    rows.append(Row(f"lm train step {shape[0]}x{shape[1]}", fns))
    for kind in ("captioner", "assistant"):
        model, batches = mllm_setup(kind, args.quick)
        twin = to_transformers(model).train()
        match_trainable(model, twin, to_transformers)
        gap = check_twin(model, twin, batches[0])
        tokens = sum(b["input_ids"].numel() for b in batches) / len(batches)
        print(f"{kind}: {n_trainable(model):,} trainable parameters (twin {n_trainable(twin):,}); "
              f"{len(batches)} batches of {batches[0]['input_ids'].shape[0]} rows, "
              f"{tokens:.0f} tokens per batch on average; twin's logit gap {gap:.1e}")
        loss, fns = chat_loss, {}
        if kind == "assistant":  # the job's loss runs length buckets; "padded": one batch
            loss = functools.partial(chat_loss, buckets=AssistantConfig().length_buckets)
            fns["padded"] = train_step(model, chat_loss, batches)
        fns = {"ours": train_step(model, loss, batches), **fns,
               "transformers": train_step(twin, twin_loss, [twin_batch(b) for b in batches])}
        if args.compile:
            fns["compiled"] = train_step(torch.compile(model), loss, batches)
        if args.levers and kind == "assistant":
            fns["fused adamw"] = train_step(model, loss, batches, fused=True)
            fns["channels-last"] = train_step(channels_last(model), loss, batches)
        rows.append(Row(f"{kind} stage-2 step", fns, steps_per_call=len(batches)))
        new_tokens = 32 if not args.quick else 4
        with_image = next(b for b in batches if "pixel_values" in b)
        rows.append(Row(f"{kind} generate 8x{new_tokens}",
                        generation_fns(model, twin, with_image, new_tokens)))
    return rows


def main(argv=None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true",
                        help="also time minimllm's training steps under torch.compile")
    parser.add_argument("--levers", action="store_true",
                        help="also time the assistant's step with fused AdamW and with "
                             "channels-last convolution weights")
    parser.add_argument("--quick", action="store_true",
                        help="small random models, one repeat: checks the script in seconds")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 1
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = build_rows(args)
    for row in rows:  # warm up (and compile), then count the FLOPs of one call
        for name, fn in row.fns.items():
            t0 = time.perf_counter()
            fn()
            if name == "compiled":
                print(f"{row.name}: compile and first call {time.perf_counter() - t0:.1f} s")
        row.flops = {name: count_flops(fn) // row.steps_per_call  # compiled: as eager
                     for name, fn in row.fns.items() if name != "compiled"}
        row.flops["compiled"] = row.flops["ours"]
    peak = matmul_peak(512 if args.quick else 1024)
    for _ in range(args.repeats):  # the set-ups take turns, repeat after repeat
        for row in rows:
            for name, fn in row.fns.items():
                t0 = time.perf_counter()
                fn()
                row.times.setdefault(name, []).append(
                    (time.perf_counter() - t0) / row.steps_per_call)
    peak = max(peak, matmul_peak(512 if args.quick else 1024))
    print(f"\nfp32 matmul peak of this machine: {peak:.1f} GFLOP/s (1024 x 1024, best run)")
    print(f"{'':28}{'set-up':>14}{'ms/step':>10}{'GFLOP/step':>12}{'GFLOP/s':>10}{'of peak':>9}"
          f"{'twin/this':>11}")
    for row in rows:
        medians = {name: statistics.median(t) for name, t in row.times.items()}
        for name, seconds in medians.items():
            rate = row.flops[name] / seconds / 1e9
            print(f"{row.name if name == 'ours' else '':28}{name:>14}{seconds * 1e3:10.1f}"
                  f"{row.flops[name] / 1e9:12.2f}{rate:10.1f}{rate / peak:9.0%}"
                  f"{medians['transformers'] / seconds:11.2f}")
    print(f"medians of {args.repeats} repeats; twin/this > 1: faster than the transformers twin")
    return rows


if __name__ == "__main__":
    main()
