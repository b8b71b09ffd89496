"""Grade an exercise notebook (hand-written; no chapter teaches it).

The check cells of the student's notebook are replaced by the instructor's (from `solutions/`,
hidden tests included, matched by nbgrader `grade_id`), the notebook is executed top to bottom
with errors allowed, and every check cell that runs without an error earns its points.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from minimllm.nbtools import ROOT, nbgrader_meta


@dataclass
class ExerciseResult:
    grade_id: str
    points: float
    passed: bool
    error: str = ""


@dataclass
class GradeReport:
    notebook: str
    results: list[ExerciseResult] = field(default_factory=list)

    @property
    def score(self) -> float:
        return sum(r.points for r in self.results if r.passed)

    @property
    def total(self) -> float:
        return sum(r.points for r in self.results)

    def summary(self) -> str:
        lines = [f"grading {self.notebook}"]
        for r in self.results:
            status = "passed" if r.passed else "FAILED"
            detail = "" if r.passed else f"  ({r.error})" if r.error else ""
            lines.append(f"  {r.grade_id:<24} {status:<7} {r.points:g} point(s){detail}")
        lines.append(f"score: {self.score:g} / {self.total:g}")
        return "\n".join(lines)


def _check_cells(nb) -> dict[str, nbformat.NotebookNode]:
    return {nbgrader_meta(c)["grade_id"]: c for c in nb.cells
            if c.cell_type == "code" and nbgrader_meta(c).get("grade")
            and "grade_id" in nbgrader_meta(c)}


def default_source(path: Path) -> Path | None:
    """The instructor's notebook for a student notebook: `solutions/<same name>`, if present."""
    candidate = ROOT / "solutions" / path.name
    return candidate if candidate.exists() else None


def _error_text(cell) -> str | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename')}: {out.get('evalue')}"[:200]
    return None


def read_notebook(path: Path, what: str) -> nbformat.NotebookNode:
    """The notebook at `path`, or a FileNotFoundError / ValueError that says what is wrong."""
    if not path.is_file():
        raise FileNotFoundError(f"no notebook at {path} ({what}): check the path")
    try:
        return nbformat.read(path, as_version=4)
    except Exception as error:  # not JSON, or JSON that is no notebook
        raise ValueError(f"{path} ({what}) is not a Jupyter notebook ({type(error).__name__}: "
                         f"{str(error)[:100]}): give the .ipynb file") from error


def grade(path: str | Path, source: str | Path | None = None, timeout: int = 600,
          progress: bool = True) -> GradeReport:
    """Execute `path` with the instructor's check cells and score each exercise (a progress bar
    counts the executed code cells unless `progress=False`)."""
    from nbclient import NotebookClient
    from tqdm.auto import tqdm

    if not isinstance(timeout, int) or timeout < 1:
        raise ValueError(f"timeout must be a positive number of seconds per cell, got {timeout!r}")
    path = Path(path)
    nb = read_notebook(path, "the notebook to grade")
    source = Path(source) if source else default_source(path)
    checks = _check_cells(read_notebook(source, "the instructor's notebook (source)")
                          if source else nb)
    if not checks:
        raise ValueError(f"{path} has no check cells (cells with nbgrader metadata grade=true)")
    present = _check_cells(nb)
    for grade_id, cell in present.items():
        if grade_id in checks:
            cell.source = checks[grade_id].source  # the instructor's tests, hidden ones included

    n_code = sum(c.cell_type == "code" and bool(c.source.strip()) for c in nb.cells)
    bar = tqdm(total=n_code, desc=f"grading {path.name}", unit="cell", disable=not progress)
    client = NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent.resolve())}},
                            on_cell_executed=lambda **_: bar.update())
    try:
        client.execute(env=dict(os.environ))
    finally:
        bar.close()

    report = GradeReport(notebook=str(path))
    executed = _check_cells(nb)
    for grade_id, cell in checks.items():
        points = float(nbgrader_meta(cell).get("points", 1))
        if grade_id not in executed:
            report.results.append(ExerciseResult(grade_id, points, False, "check cell missing"))
            continue
        error = _error_text(executed[grade_id])
        report.results.append(ExerciseResult(grade_id, points, error is None, error or ""))
    return report
