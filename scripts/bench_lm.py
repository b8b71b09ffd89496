"""Benchmark: minimllm's language model vs transformers' LlamaForCausalLM at the same configuration.

    .venv/bin/python scripts/bench_lm.py [--device cpu] [--repeats 5]

Measures, side by side in one run and interleaved (so both see the same machine load):
- a training step (forward, backward, AdamW step) on a (batch, seq_len) batch;
- greedy generation with the KV cache (tokens per second).
Both models hold the same weights (`to_transformers`). Prints the medians and the ratios
(> 1 means minimllm is faster).
"""

import argparse
import statistics
import time

import torch

from minimllm.lm import LanguageModel, LMConfig, generate, to_transformers


def time_it(fn, sync):
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--new-tokens", type=int, default=100)
    p.add_argument("--vocab", type=int, default=512)
    args = p.parse_args()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    config = LMConfig(vocab_size=args.vocab)
    ours = LanguageModel(config).to(device)
    hf = to_transformers(ours).to(device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"config {config}")
    print(f"transformers attention implementation: {hf.config._attn_implementation}")

    x = torch.randint(0, args.vocab, (args.batch, args.seq_len), device=device)
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4)
    opt_hf = torch.optim.AdamW(hf.parameters(), lr=1e-4)

    def step_ours():
        loss = ours(x, labels=x).loss
        opt_ours.zero_grad(set_to_none=True)
        loss.backward()
        opt_ours.step()

    def step_hf():
        loss = hf(input_ids=x, labels=x).loss
        opt_hf.zero_grad(set_to_none=True)
        loss.backward()
        opt_hf.step()

    prompt = x[:1, :16]
    n = args.new_tokens

    def gen_ours():
        out = generate(ours, prompt, max_new_tokens=n, use_cache=True)
        assert out.shape[1] == 16 + n

    def gen_hf():
        out = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n,
                          min_new_tokens=n, do_sample=False, use_cache=True, pad_token_id=0)
        assert out.shape[1] == 16 + n

    ours.train()
    hf.train()
    for fn in (step_ours, step_hf):
        fn()  # warm up
    results = {k: [] for k in ("train_ours", "train_hf", "gen_ours", "gen_hf")}
    for _ in range(args.repeats):
        results["train_ours"].append(time_it(step_ours, sync))
        results["train_hf"].append(time_it(step_hf, sync))
    ours.eval()
    hf.eval()
    with torch.no_grad():
        gen_ours()
        gen_hf()
        for _ in range(args.repeats):
            results["gen_ours"].append(time_it(gen_ours, sync))
            results["gen_hf"].append(time_it(gen_hf, sync))
        a = generate(ours, prompt, max_new_tokens=20)
        b = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=20,
                        min_new_tokens=20, do_sample=False, pad_token_id=0)
        print("same greedy tokens:", torch.equal(a, b))
    med = {k: statistics.median(v) for k, v in results.items()}
    tokens = args.batch * args.seq_len
    print(f"\n{'':28}{'minimllm':>12}{'transformers':>14}{'ratio':>8}")
    print(f"{'train step (tokens/s)':28}{tokens / med['train_ours']:12.0f}"
          f"{tokens / med['train_hf']:14.0f}"
          f"{med['train_hf'] / med['train_ours']:8.2f}")
    print(f"{'generation, KV cache (tok/s)':28}{n / med['gen_ours']:12.0f}{n / med['gen_hf']:14.0f}"
          f"{med['gen_hf'] / med['gen_ours']:8.2f}")
    print("ratio = transformers time / minimllm time (> 1: minimllm is faster)")


if __name__ == "__main__":
    main()
