"""Does a language model read positions, or answer relation questions from the order of mention?

    python scripts/relation_cue.py "relations x3 s0=runs/relx3_s0" "same mix s0=runs/same_s0"

For each saved LM (NAME=FOLDER), relation text QA split by whether the caption's order of
mention gives the answer (`minimllm.lm.relation_cue_split`). Results are cached by name in
data/checkpoints/lm_sweeps/relation_cue.json (or --cache), which chapter 01 reads.
"""

import argparse
import json
from pathlib import Path

from run_cache import load_runs, save_run

from minimllm.lm import LanguageModel, relation_cue_split
from minimllm.pretrained import load_tokenizer
from minimllm.utils import checkpoints_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", metavar="NAME=FOLDER")
    parser.add_argument("--cache", type=Path,
                        default=checkpoints_dir() / "lm_sweeps" / "relation_cue.json")
    args = parser.parse_args()
    for spec in args.models:
        name, _, folder = spec.partition("=")
        if not folder:
            raise SystemExit(f"{spec!r}: give NAME=FOLDER")
        if name in load_runs(args.cache):
            print(f"cached: {name}")
            continue
        model = LanguageModel.from_pretrained(folder, "cpu")
        split = relation_cue_split(model, load_tokenizer(folder))
        print(name, json.dumps(split), flush=True)
        save_run(args.cache, name, {"folder": folder, **split})


if __name__ == "__main__":
    main()
