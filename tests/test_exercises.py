"""Every solution passes its checks and every stub fails them (graded as a student would be)."""
from pathlib import Path

import nbformat
import pytest

from minimllm.grading import grade
from minimllm.nbtools import ROOT

SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution_passes_every_check(solution):
    report = grade(solution)
    assert report.results, "no exercises found"
    failed = [(r.grade_id, r.error) for r in report.results if not r.passed]
    assert not failed, f"{solution.name}: {failed}"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_stub_fails_every_check(solution):
    report = grade(ROOT / "exercises" / solution.name, source=solution)
    passed = [r.grade_id for r in report.results if r.passed]
    assert not passed, f"exercises/{solution.name}: these checks pass without a solution: {passed}"


def test_grader_scores_a_partly_solved_notebook(tmp_path):
    """Fill in one exercise of a stub notebook: exactly that one's points are earned."""
    solution = ROOT / "solutions" / "00_setup_and_data.ipynb"
    student = nbformat.read(ROOT / "exercises" / solution.name, as_version=4)
    answers = nbformat.read(solution, as_version=4)
    first = next(i for i, c in enumerate(answers.cells)
                 if c.metadata.get("nbgrader", {}).get("solution"))
    student.cells[first].source = answers.cells[first].source
    path = tmp_path / solution.name
    nbformat.write(student, path)
    report = grade(path, source=solution)
    first_id = answers.cells[first].metadata["nbgrader"]["grade_id"].replace("-solution", "-check")
    assert [r.grade_id for r in report.results if r.passed] == [first_id]
    assert 0 < report.score < report.total
    assert "score:" in report.summary()


def test_grader_uses_the_instructors_checks(tmp_path):
    """A student who weakens a check cell is still graded by the instructor's version."""
    solution = ROOT / "solutions" / "00_setup_and_data.ipynb"
    student = nbformat.read(ROOT / "exercises" / solution.name, as_version=4)
    for cell in student.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            cell.source = "pass"
    path = tmp_path / "mine.ipynb"
    nbformat.write(student, path)
    report = grade(path, source=solution)
    assert report.score == 0


def test_grader_rejects_a_notebook_without_checks(tmp_path):
    path = tmp_path / "plain.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, path)
    with pytest.raises(ValueError, match="no check cells"):
        grade(path)
    with pytest.raises(FileNotFoundError):
        grade(Path(tmp_path / "missing.ipynb"))
