"""Does an exported model answer with the tokens of `minimllm chat`? (the README's figure)

Exports a saved assistant (default: the shipped reference, data/checkpoints/assistant) with
`minimllm.export.save_transformers`, loads the folder with transformers
(`AutoModelForImageTextToText` / `AutoProcessor`, `trust_remote_code=True`) and, for N held-out
Shapes World test questions (seed 0), compares minimllm's greedy reply (`minimllm.chat.chat`,
the format prompt the assistant was tuned with appended, as `minimllm chat` does) with
transformers' `generate` on the processor's inputs: the token ids, the decoded text, and the
largest logit gap on the prompt.

    python scripts/export_tokens.py [--model DIR] [--n 200]
"""

import argparse
import json
import tempfile
import time

import torch


def main(argv=None) -> dict:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from minimllm.chat import END_ID, ChatProcessor, chat, image_turn, load_mllm
    from minimllm.cli import trained_format_prompt
    from minimllm.data import build_dataset
    from minimllm.export import save_transformers
    from minimllm.tokenizer import EOS_ID
    from minimllm.utils import checkpoints_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None,
                        help="a saved assistant (default: the shipped data/checkpoints/assistant)")
    parser.add_argument("--n", type=int, default=200, help="held-out test questions")
    args = parser.parse_args(argv)
    path = args.model or checkpoints_dir() / "assistant"
    model, processor = load_mllm(path, device="cpu")
    tokenizer = processor.tokenizer
    suffix = trained_format_prompt(path)
    rows = build_dataset(n_train=0, n_validation=0, n_test=args.n, n_compositional=0,
                         image_size=model.config.vision.image_size)["test"]
    ours_processor = ChatProcessor.for_model(model, tokenizer)
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_transformers(model, tokenizer, f"{tmp}/hf", format_prompt=suffix)
        hf = AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
        same_tokens = same_text = 0
        gap = 0.0
        for row in rows:
            text = row["question"] + suffix
            reply = chat(model, ours_processor, [image_turn(text)], [row["image"]],
                         max_new_tokens=96)[0]
            messages = [{"role": "user", "content": [{"type": "image", "image": row["image"]},
                                                     {"type": "text", "text": text}]}]
            inputs = processor.apply_chat_template(messages, tokenize=True, return_dict=True,
                                                   add_generation_prompt=True,
                                                   return_tensors="pt")
            ours_in = ours_processor([image_turn(text)], [row["image"]],
                                     add_generation_prompt=True)
            with torch.no_grad():
                gap = max(gap, (model(ours_in["input_ids"], ours_in["pixel_values"]).logits
                                - hf(**inputs).logits).abs().max().item())
            new = model.generate(ours_in["input_ids"], ours_in["pixel_values"],
                                 eos_token_id=END_ID, max_new_tokens=96)[0].tolist()
            stops = [new.index(t) for t in (END_ID, EOS_ID) if t in new]
            new = new[:min(stops) + 1] if stops else new
            theirs = hf.generate(**inputs)[0, inputs["input_ids"].shape[1]:].tolist()
            same_tokens += theirs == new
            same_text += processor.decode(theirs, skip_special_tokens=True).strip() == reply
    result = {"model": str(path), "questions": len(rows), "same_tokens": same_tokens,
              "same_text": same_text, "largest_logit_gap": gap,
              "seconds": round(time.time() - start, 1)}
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
