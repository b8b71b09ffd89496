"""Does a language model read positions, or lean on the order in which a caption names objects?

    python scripts/reading_order.py "relations x3 s0=data/checkpoints/lm at commit ce0bf6d"

For each saved LM (NAME=FOLDER; "FOLDER at commit X" takes the folder as commit X shipped it),
text QA on the 600 held-out scenes, once with captions that name objects row by row (as every
scene lists them) and once with the same captions in a random order (`text_qa_items(...,
shuffled=True)`). A model that reads positions scores alike on both. Results are cached by name
in data/checkpoints/lm_sweeps/reading_order.json (or --cache), which chapter 01 reads.
"""

import argparse
from pathlib import Path

from run_cache import checkpoint_at, load_runs, save_run

from minimllm.lm import READING_QTYPES, LanguageModel, reading_test_scenes, text_qa, text_qa_items
from minimllm.pretrained import load_tokenizer
from minimllm.utils import checkpoints_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", metavar="NAME=FOLDER")
    parser.add_argument("--cache", type=Path,
                        default=checkpoints_dir() / "lm_sweeps" / "reading_order.json")
    args = parser.parse_args()
    scenes = reading_test_scenes(600)
    for spec in args.models:
        name, _, folder = spec.partition("=")
        if not folder:
            raise SystemExit(f"{spec!r}: give NAME=FOLDER")
        if name in load_runs(args.cache):
            print(f"cached: {name}")
            continue
        path, _, commit = folder.partition(" at commit ")
        path = checkpoint_at(path, commit) if commit else Path(path)
        model, tokenizer = LanguageModel.from_pretrained(path, "cpu"), load_tokenizer(path)
        row = {"folder": folder}
        for order, shuffled in (("reading order", False), ("shuffled", True)):
            items = text_qa_items(scenes, seed=3, qtypes=READING_QTYPES, shuffled=shuffled)
            row[order] = {k: round(v, 4) for k, v in text_qa(model, tokenizer, items)[0].items()}
        print(name, row, flush=True)
        save_run(args.cache, name, row)


if __name__ == "__main__":
    main()
