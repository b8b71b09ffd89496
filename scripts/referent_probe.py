"""Is the seed-0 assistant's miss on unseen colour-shape pairs a misread shape, or the object
named by its colour pointing at the wrong thing? Its shape questions on test_compositional, split
by how the question names the object (by position, by colour, by size and colour), each asked
again with the object named by its position. Then the colour view blanked, on those and on
seen pairs (test). Prints accuracies and caches them in
data/checkpoints/assistant_sweeps/referents.json.

    .venv/bin/python scripts/referent_probe.py
"""
import json
import re
import time
from collections import Counter

import torch

from minimllm.assistant import AssistantConfig
from minimllm.chat import load_mllm
from minimllm.data import COLORS, POSITIONS, load_dataset
from minimllm.evaluate import evaluate_vqa, final_answer, normalize_answer
from minimllm.pretrained import find_pretrained
from minimllm.utils import data_dir
from minimllm.views import background_pixel, silhouette

start = time.perf_counter()
c = AssistantConfig()
model, processor = load_mllm(find_pretrained("assistant"))
dataset = load_dataset(n_train=c.n_train, n_test=c.n_eval, n_compositional=c.n_eval)
comp = dataset["test_compositional"]
rows = [r for r in comp if r["qtype"] == "shape"]


def named_by(question: str) -> str:
    if any(p in question for p in POSITIONS):
        return "position"
    if any(re.search(rf"\b{w}\b", question) for w in ("small", "large")):
        return "size and colour"
    return "colour" if any(re.search(rf"\b{w}\b", question) for w in COLORS) else "other"


_, answers = evaluate_vqa(model, processor, rows, c.format_prompt)
kinds = [named_by(r["question"]) for r in rows]
right = [normalize_answer(final_answer(a)) == normalize_answer(r["answer"])
         for a, r in zip(answers, rows)]
out = {"n": len(rows), "overall": sum(right) / len(rows), "by_referent": {}}
for k in sorted(set(kinds)):
    sel = [ok for ok, kk in zip(right, kinds) if kk == k]
    out["by_referent"][k] = {"n": len(sel), "accuracy": sum(sel) / len(sel)}
# the same objects named by their position ("the object in the top left")
by_position = []
for r in rows:
    objs = [o for o in r["objects"] if o["shape"] == r["answer"]]
    if len(objs) == 1 and sum(o["position"] == objs[0]["position"] for o in r["objects"]) == 1:
        by_position.append({**r, "question": f"what kind of shape is the object in the "
                                             f"{objs[0]['position']}?"})
_, answers2 = evaluate_vqa(model, processor, by_position, c.format_prompt)
ok2 = [normalize_answer(final_answer(a)) == normalize_answer(r["answer"])
       for a, r in zip(answers2, by_position)]
out["asked_by_position"] = {"n": len(by_position), "accuracy": sum(ok2) / len(by_position)}
out["wrong_answers"] = Counter((r["answer"], final_answer(a)) for a, r, ok
                               in zip(answers, rows, right) if not ok).most_common(8)


def asked_by_position(split_rows) -> list[dict]:
    """Shape questions about the rows' objects, each named by its cell (when alone there)."""
    out_rows = []
    for r in split_rows:
        objs = [o for o in r["objects"] if o["shape"] == r["answer"]]
        if len(objs) == 1 and sum(o["position"] == objs[0]["position"]
                                  for o in r["objects"]) == 1:
            out_rows.append({**r, "question": "what kind of shape is the object in the "
                                              f"{objs[0]['position']}?"})
    return out_rows


def shape_accuracy(split_rows) -> float:
    _, said = evaluate_vqa(model, processor, split_rows, c.format_prompt)
    return sum(normalize_answer(final_answer(a)) == normalize_answer(r["answer"])
               for a, r in zip(said, split_rows)) / len(split_rows)


# the colour view blanked (the background everywhere): does the LM read the shape from the
# silhouette alone? On unseen pairs, and on seen pairs (test) as the control.
test_rows = asked_by_position([r for r in dataset["test"] if r["qtype"] == "shape"])
with_colour = {"test": shape_accuracy(test_rows),
               "compositional": out["asked_by_position"]["accuracy"]}
views = model.views
model.views = lambda pv: torch.cat([silhouette(pv), background_pixel(pv).expand_as(pv)])
blank = {"test": shape_accuracy(test_rows), "compositional": shape_accuracy(by_position)}
model.views = views
out["colour_view_blanked"] = {"n_test": len(test_rows), "with_colour_grid": with_colour,
                              "colour_grid_blank": blank}
out["seconds"] = round(time.perf_counter() - start, 1)
print(json.dumps(out, indent=1))
path = data_dir() / "checkpoints" / "assistant_sweeps" / "referents.json"
path.write_text(json.dumps(out, indent=1) + "\n")
print(f"cached in {path}")
