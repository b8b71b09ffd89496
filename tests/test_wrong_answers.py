"""Exercise checks fail on plausible wrong answers, not only on the empty stub.

Each case edits one solution cell of `solutions/NN_*.ipynb` into a mistake a student could make
(a norm over the wrong axis, a mask on the wrong side, a reading that contradicts the printed
table) and runs that exercise's cells, from its prompt to its check, after the cells before it:
the check must raise. The solution itself must pass the same run, so a case that fails for
another reason (a replacement that no longer matches the cell) is caught too.
"""
import contextlib
import io

import nbformat
import pytest

from minimllm.nbtools import ROOT


def exercise_cells(path) -> tuple[list[str], dict[int, list]]:
    """The notebook's code cells before the first exercise, and each exercise's code cells as
    (grade_id or None, source), split at the markdown headings `### Exercise N`."""
    nb = nbformat.read(path, as_version=4)
    setup, exercises, current = [], {}, None
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("### Exercise "):
            current = int(cell.source.split()[2])
            exercises[current] = []
        elif cell.cell_type == "code":
            entry = (cell.metadata.get("nbgrader", {}).get("grade_id"), cell.source)
            (setup if current is None else exercises[current]).append(entry)
    return [src for _, src in setup], exercises


def run_cells(sources, namespace: dict) -> None:
    for src in sources:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(src, "<cell>", "exec"), namespace)


# (notebook, exercise, what the mistake is, solution cell, old text, new text)
CASES = [
    ("06", 1, "no mask: padding read", "ex1-solution",
     "layer(x, states, real[:, None, None, :].expand(B, 1, T, S))",
     "layer(x, states, torch.ones(B, 1, T, S, dtype=torch.bool))"),
    ("06", 1, "padding taken at the front", "ex1-solution",
     "torch.arange(S)[None, :] < torch.tensor(lengths)[:, None]",
     "torch.arange(S)[None, :] >= S - torch.tensor(lengths)[:, None]"),
    ("06", 2, "markers do not see their own image", "ex2-solution",
     "markers + tokens_per_image - 1", "markers"),
    ("06", 2, "the most recent image only", "ex2-solution",
     "torch.arange(n_images)[None, None, :] < started[..., None]",
     "torch.arange(n_images)[None, None, :] == started[..., None] - 1"),
    ("07", 1, "the first reply kept", "ex1-solution",
     "start = supervised[-1]\n    while start > 0 and labels[start - 1] != -100:\n"
     "        start -= 1\n    return [label if i >= start else -100",
     "end = supervised[0]\n    while end + 1 < len(labels) and labels[end + 1] != -100:\n"
     "        end += 1\n    return [label if i <= end else -100"),
    ("07", 1, "the last token only", "ex1-solution",
     "label if i >= start else -100", "label if i == supervised[-1] else -100"),
    ("07", 1, "the share pooled over conversations", "ex1-answer-solution",
     "share = float(fractions.mean())",
     "share = float(np.sum(counts['last']) / np.sum(counts['all']))"),
    ("08", 1, "groups along the output axis", "ex1-solution",
     "runs = W.reshape(out, n_in // group, group)",
     "runs = W.T.reshape(n_in, out // group, group).transpose(0, 1)"),
    ("08", 1, "qmax = 2^(bits-1)", "ex1-solution",
     "qmax = 2 ** (bits - 1) - 1", "qmax = 2 ** (bits - 1)"),
    ("08", 1, "the reading reversed", "ex1-answer-solution",
     'answer = "a" if errors[128] < errors[512] / 2 else "b"',
     'answer = "b" if errors[128] < errors[512] / 2 else "a"'),
    ("08", 2, "symmetric quantiles without a zero", "ex2-solution",
     "values = torch.cat([positive, torch.zeros(1, dtype=torch.float64), negative])"
     ".sort().values",
     "values = normal.icdf(torch.linspace(1 - offset, offset, n, dtype=torch.float64))"),
    ("08", 2, "mean absolute error for RMS", "ex2-solution",
     "(restored - x.flatten()).pow(2).mean().sqrt().item()",
     "(restored - x.flatten()).abs().mean().item()"),
    ("08", 2, "the winners swapped", "ex2-answer-solution",
     'min(("nf", "int")', 'max(("nf", "int")'),
    ("08", 3, "norm over the input axis", "ex3-solution",
     "return (m / adapted.norm(dim=1))[:, None] * adapted",
     "return m[:, None] * adapted / adapted.norm(dim=0)"),
    ("08", 3, "the scale alpha / r left out", "ex3-solution",
     "adapted = W + (alpha / A.shape[0]) * B @ A", "adapted = W + B @ A"),
    ("08", 3, "the frozen weight's norm", "ex3-solution",
     "return (m / adapted.norm(dim=1))[:, None] * adapted",
     "return (m / W.norm(dim=1))[:, None] * adapted"),
    ("08", 4, "no gradient checkpointing", "ex4-solution", "grad_checkpointing=True, ", ""),
    ("08", 4, "fp32 activations", "ex4-solution",
     "bits=32, activation_bytes=2", "bits=32"),
    ("08", 4, "'total' as the dominant part", "ex4-solution",
     '(k for k in estimate if k != "total")', "estimate"),
]

@pytest.fixture(scope="module")
def prepared():
    """Per notebook: the exercises' cells and the namespace before each exercise (quick mode)."""
    cache = {}

    def get(number: str):
        if number not in cache:
            path = next((ROOT / "solutions").glob(f"{number}_*.ipynb"))
            setup, exercises = exercise_cells(path)
            namespace = {}
            run_cells(setup, namespace)
            before, last = {}, max(case[1] for case in CASES if case[0] == number)
            for n, cells in exercises.items():  # the solution, exercise by exercise
                if n > last:  # later exercises have no case (and may train models)
                    break
                before[n] = dict(namespace)
                run_cells([src for _, src in cells], namespace)
            cache[number] = (exercises, before)
        return cache[number]

    return get


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-ex{c[1]}-{c[2]}" for c in CASES])
def test_check_fails_on_a_wrong_answer(case, prepared):
    number, exercise, _, grade_id, old, new = case
    exercises, before = prepared(number)
    cells = exercises[exercise]
    assert any(gid == grade_id and old in src for gid, src in cells), \
        f"the solution of {grade_id} no longer holds {old!r}: update the case"
    wrong = [src.replace(old, new) if gid == grade_id else src for gid, src in cells]
    with pytest.raises((AssertionError, ValueError, RuntimeError)):
        run_cells(wrong, dict(before[exercise]))
