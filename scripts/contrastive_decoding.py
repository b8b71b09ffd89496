"""Visual contrastive decoding: does dividing out the assistant's language prior let it name an
unseen (colour, shape) pair?

`scripts/compositional_probe.py` found the pull toward seen pairs in the words: after "a small
red" the assistant rarely ranks "triangle" first for a red triangle (0.16-0.22), after a colour
the triangle is seen with mostly does (0.70-0.79). That prior is what the model predicts with no
image at all. Visual contrastive decoding (Leng et al. 2024, "Mitigating Object Hallucinations in
Large Vision-Language Models through Visual Contrastive Decoding") contrasts, at every step, the
logits given the image with the logits given a distorted image (here: the empty scene),

    logits = (1 + alpha) * logits(image) - alpha * logits(empty scene),

among the tokens the image makes plausible (probability >= beta * the most probable one, the
paper's adaptive plausibility constraint). A token the image supports and the prior does not
gains; one that only the prior supports loses. Training is unchanged: this is decoding alone.

    python scripts/contrastive_decoding.py --model runs/assistant_sweeps/text-pairs-s0 \
        --alpha 1 --beta 0.1 --cache runs/vcd.json

scores the saved assistant with `evaluate_assistant` (every benchmark, both blind baselines) with
its `generate` replaced by the contrastive one, and caches the metrics under (model, alpha, beta).
`--probe --alphas 0 1 2 4` instead measures the one step that matters, as
`compositional_probe.py` does: teacher-forced up to "a <size> <colour>" for one-object images,
the share whose shape the contrast ranks first among the six shape words (plausibility among
them, beta times the most probable shape).
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from run_cache import load_runs, save_run

from minimllm.lm import KVCache
from minimllm.mllm import MLLM


def contrastive_logits(real: torch.Tensor, blind: torch.Tensor, alpha: float,
                       beta: float) -> torch.Tensor:
    """(B, V) logits with the image and with the empty scene -> VCD's logits (B, V): the
    contrast, -inf where the image's probability is below beta times its largest."""
    p = real.softmax(-1)
    plausible = p >= beta * p.max(-1, keepdim=True).values
    return ((1 + alpha) * real - alpha * blind).masked_fill(~plausible, float("-inf"))


def contrastive_generate(model: MLLM, blank: torch.Tensor, alpha: float, beta: float):
    """A `generate` for `model` (greedy, KV cache) that decodes with `contrastive_logits`; `blank`
    (3, S, S) is the empty scene's pixel values, shown in place of every image."""

    @torch.no_grad()
    def generate(input_ids, pixel_values=None, max_new_tokens=48, eos_token_id=None, **_):
        if pixel_values is None:  # no image: nothing to contrast
            return MLLM.generate(model, input_ids, None, max_new_tokens, eos_token_id)
        B = len(input_ids)
        ids = input_ids.to(model.device).repeat(2, 1)                     # (2B, T)
        shown = torch.cat([pixel_values.to(model.device),
                           blank.to(model.device).expand_as(pixel_values)])
        embeds, context = model.embed_with_context(ids, shown)            # (2B, T, D)
        cache = KVCache(model.lm.config, 2 * B)
        out = model.lm(inputs_embeds=embeds, cache=cache, context=context)
        finished = torch.zeros(B, dtype=torch.bool, device=ids.device)
        new = []
        for i in range(max_new_tokens):
            logits = out.logits[:, -1]                                    # (2B, V)
            nxt = contrastive_logits(logits[:B], logits[B:], alpha, beta).argmax(-1)  # (B,)
            if eos_token_id is not None:
                nxt = nxt.masked_fill(finished, eos_token_id)
                finished |= nxt == eos_token_id
            new.append(nxt)
            if i == max_new_tokens - 1 or finished.all():
                break
            out = model.lm(input_ids=nxt.repeat(2)[:, None], cache=cache, context=context)
        return torch.stack(new, dim=1)

    return generate


@torch.no_grad()
def shape_after_colour_contrast(model, processor, scenes_images, blank: torch.Tensor,
                                alphas, beta: float) -> dict[float, float]:
    """{alpha: share of one-object images whose shape the contrast ranks first after
    "a <size> <colour>"} (the object's own colour; teacher-forced reply to "describe the
    image.")."""
    from compositional_probe import SHAPES, described_up_to_colour, shape_token_ids

    firsts = shape_token_ids(processor.tokenizer)
    right = {a: [] for a in alphas}
    for scene, image in scenes_images:
        obj = scene["objects"][0]
        ids = torch.tensor([described_up_to_colour(processor, obj, obj["color"])] * 2)
        pixels = torch.cat([processor.pixel_values([image]), blank[None]])
        logits = model(ids, pixels).logits[:, -1, firsts].log_softmax(-1)  # (2, 6): image, empty
        for a in alphas:
            best = contrastive_logits(logits[:1], logits[1:], a, beta).argmax(-1).item()
            right[a].append(SHAPES[best] == obj["shape"])
    return {a: float(np.mean(v)) for a, v in right.items()}


def probe(model, processor, blank, alphas, beta: float, n: int, seeds) -> None:
    from compositional_probe import one_object_images

    for seed in seeds:
        for name, heldout, base in (("seen pairs", False, 2000), ("held-out pairs", True, 3000)):
            *_, images, _, scenes = one_object_images(n, base + seed, heldout=heldout)
            acc = shape_after_colour_contrast(model, processor, list(zip(scenes, images)), blank,
                                              alphas, beta)
            print(f"seed {seed}  {name}: shape ranked first after 'a <size> <colour>' with the "
                  f"contrast (beta {beta}): " + ", ".join(f"alpha {a:g} {v:.3f}"
                                                         for a, v in acc.items()), flush=True)


def main() -> None:
    from minimllm.assistant import evaluate_assistant
    from minimllm.chat import load_mllm
    from minimllm.data import BACKGROUND_RGB, load_dataset
    from minimllm.pretrained import load_metrics
    from minimllm.vision import to_pixel_values

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a saved assistant folder")
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--n-eval", type=int, help="test scenes (default: the model's own)")
    parser.add_argument("--cache", type=Path, default=Path("runs") / "vcd.json")
    parser.add_argument("--probe", action="store_true",
                        help="teacher-forced shape ranking only (one-object images), per alpha")
    parser.add_argument("--alphas", type=float, nargs="+", default=[0, 0.5, 1, 2, 4])
    parser.add_argument("--n-probe", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    if args.alpha < 0 or not 0 <= args.beta <= 1:
        parser.error("alpha >= 0 and beta in [0, 1]")
    key = f"{args.model} alpha={args.alpha} beta={args.beta}"
    if key in load_runs(args.cache):
        print(f"{key}: in the cache")
        return
    saved = load_metrics(args.model)
    c = saved["settings"]
    model, processor = load_mllm(args.model, device="cpu")
    size = model.vision.config.image_size
    blank = to_pixel_values([Image.new("RGB", (size, size), BACKGROUND_RGB)])[0]
    if args.probe:
        model.eval()
        probe(model, processor, blank, args.alphas, args.beta, args.n_probe, args.seeds)
        return
    if args.alpha > 0:
        model.generate = contrastive_generate(model, blank, args.alpha, args.beta)
    n_eval = args.n_eval or c["n_eval"]
    dataset = load_dataset(n_train=c["n_train"], n_test=n_eval, n_compositional=n_eval)
    scenes = [{"objects": r["objects"], "defects": r["defects"]} for r in dataset["train"]]
    start = time.perf_counter()
    results = evaluate_assistant(model, processor, dataset, scenes, c["format_prompt"],
                                 saved["seed"])
    results["seconds"] = time.perf_counter() - start
    save_run(args.cache, key, {"model": str(args.model), "alpha": args.alpha, "beta": args.beta,
                               "n_eval": n_eval, **results})
    v = results
    print(f"{key}: VQA {v['vqa_test']['overall']:.3f} (shape {v['vqa_test']['shape']:.3f}), "
          f"held-out phrasings {v['vqa_heldout']['overall']:.3f}, compositional "
          f"{v['vqa_compositional']['overall']:.3f} (shape {v['vqa_compositional']['shape']:.3f}),"
          f" caption {v['caption']['accuracy']:.3f}, POPE adversarial F1 "
          f"{v['pope']['adversarial']['f1']:.3f} (yes-ratio "
          f"{v['pope']['adversarial']['yes_ratio']:.3f}); answer prior "
          f"{v['vqa_blind']['answer prior']['overall']:.3f}, empty scene "
          f"{v['vqa_blind']['no image']['overall']:.3f} ({v['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
