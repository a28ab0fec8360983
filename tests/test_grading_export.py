"""The nbgrader and otter-grader versions of the exercises, graded by the real tools.

For each tool, a learner who filled in the answer cells with the solutions (alice) scores full
marks and one who handed in the untouched notebook (bob) scores 0. The two tools run at the
same time, each in its own process (they start kernels: this is the slow part, about a minute
on two cores, hence the slow mark).
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from wmkit.grading import build
from wmkit.grading.core import get_exercise

ROOT = Path(__file__).resolve().parents[1]
NBGRADER_EXERCISE = "01_model_loss"
OTTER_EXERCISE = "06_rssm_kl"
BIN = Path(sys.executable).parent

pytest.importorskip("nbgrader")
pytest.importorskip("otter")

NBGRADER = textwrap.dedent('''
    import json, os, sys
    import nbformat
    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI
    from traitlets.config import Config

    course, exercise, solution = sys.argv[1:4]
    os.chdir(course)
    config = Config()
    config.CourseDirectory.root = course
    config.CourseDirectory.db_url = "sqlite:///gradebook.db"
    config.ExecutePreprocessor.timeout = 300
    api = NbGraderAPI(config=config)

    def check(result):
        assert result["success"], result.get("error") or result.get("log")

    check(api.generate_assignment(exercise))  # nbgrader generate_assignment
    released = nbformat.read(f"release/{exercise}/{exercise}.ipynb", as_version=4)
    answers = {c.id: c.source for c in nbformat.read(solution, as_version=4).cells}
    for student, fill in (("alice", True), ("bob", False)):
        nb = nbformat.from_dict(json.loads(nbformat.writes(released)))
        for cell in nb.cells:
            if fill and cell.metadata.get("nbgrader", {}).get("solution"):
                cell.source = answers[cell.id]
        os.makedirs(f"submitted/{student}/{exercise}")
        nbformat.write(nb, f"submitted/{student}/{exercise}/{exercise}.ipynb")
        check(api.autograde(exercise, student))  # nbgrader autograde
    with Gradebook("sqlite:///gradebook.db") as book:
        scores = {s: book.find_submission(exercise, s).score for s in ("alice", "bob")}
        points = book.find_assignment(exercise).max_score
        tests = [c.name for c in book.find_notebook(exercise, exercise).grade_cells]
    print(json.dumps({"scores": scores, "max_score": points, "grade_cells": tests}))
''')

OTTER = textwrap.dedent('''
    import json, os, sys
    from otter.api import grade_submission
    from otter.generate import main as generate

    folder, alice, bob = sys.argv[1:4]
    os.chdir(folder)
    generate(tests_dir="tests", output_path="autograder.zip", no_requirements=True,
             no_environment=True)  # otter generate
    scores, cases = {}, {}
    for student, path in (("alice", alice), ("bob", bob)):
        results = grade_submission(path, "autograder.zip", quiet=True)  # otter run
        scores[student] = results.total
        cases[student] = {name: [r.passed for r in result.test_case_results]
                          for name, result in results.results.items()}
    print(json.dumps({"scores": scores, "max_score": results.possible, "cases": cases}))
''')


def filled(student: Path, solution: Path, target: Path) -> Path:
    """The student notebook with its answer cells as in the solution (same cell ids)."""
    nb = nbformat.read(student, as_version=4)
    answers = {c.id: c.source for c in nbformat.read(solution, as_version=4).cells}
    for cell in nb.cells:
        if "answer" in cell.metadata.get("tags", []):
            cell.source = answers[cell.id]
    nbformat.write(nb, target)
    return target


@pytest.fixture(scope="module")
def tool_runs(tmp_path_factory):
    """Start nbgrader's and otter-grader's runs (both at once); each test waits for its own."""
    base = tmp_path_factory.mktemp("tools")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONWARNINGS": "ignore"}
    course = base / "nbgrader"
    exercise = NBGRADER_EXERCISE
    source = ROOT / "exercises" / "nbgrader" / "source" / exercise
    shutil.copytree(source, course / "source" / exercise)
    nbgrader = subprocess.Popen(
        [sys.executable, "-c", NBGRADER, str(course), exercise,
         str(ROOT / "exercises" / "solutions" / f"{exercise}.ipynb")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    folder = base / "otter"
    exercise = OTTER_EXERCISE
    shutil.copytree(ROOT / "exercises" / "otter" / exercise, folder)
    alice = filled(folder / f"{exercise}.ipynb",
                   ROOT / "exercises" / "solutions" / f"{exercise}.ipynb", folder / "alice.ipynb")
    bob = shutil.copy(folder / f"{exercise}.ipynb", folder / "bob.ipynb")
    otter = subprocess.Popen([sys.executable, "-c", OTTER, str(folder), str(alice), str(bob)],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = {"nbgrader": nbgrader, "otter": otter}
    yield runs
    for process in runs.values():
        if process.poll() is None:
            process.kill()


def result_of(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=900)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_nbgrader_grades_the_solutions_full_and_the_stubs_zero(tool_runs):
    exercise = get_exercise(NBGRADER_EXERCISE)
    result = result_of(tool_runs["nbgrader"])
    checks = [c for part in exercise.parts.values() for c in part.checks]
    assert len(result["grade_cells"]) == len(checks)  # one graded test cell per check
    assert result["max_score"] == exercise.max_points
    assert result["scores"] == {"alice": exercise.max_points, "bob": 0}


@pytest.mark.slow
def test_otter_grades_the_solutions_full_and_the_stubs_zero(tool_runs):
    exercise = get_exercise(OTTER_EXERCISE)
    result = result_of(tool_runs["otter"])
    checks = [c for part in exercise.parts.values() for c in part.checks]
    assert result["max_score"] == exercise.max_points
    assert result["scores"] == {"alice": exercise.max_points, "bob": 0}
    assert result["cases"]["alice"] == {exercise.id: [True] * len(checks)}
    assert result["cases"]["bob"] == {exercise.id: [False] * len(checks)}


def test_exports_have_one_graded_cell_and_one_case_per_check():
    for source in sorted(build.SOURCE_DIR.glob("[0-9][0-9]_*.py")):
        exercise = get_exercise(source.stem)
        checks = [(p.function, c) for p in exercise.parts.values() for c in p.checks]
        nb = nbformat.read(ROOT / "exercises" / "nbgrader" / "source" / source.stem /
                           f"{source.stem}.ipynb", as_version=4)
        graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
        assert [c.metadata.nbgrader.points for c in graded] == [c.points for _, c in checks]
        assert all(c.metadata.nbgrader.locked for c in graded)
        assert [f"{c.name!r}" in cell.source for (_, c), cell in zip(checks, graded)] == \
            [True] * len(checks)
        answers = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
        assert len(answers) == len(exercise.parts)
        assert all("### BEGIN SOLUTION" in c.source for c in answers)
        scope: dict = {}
        exec((ROOT / "exercises" / "otter" / source.stem / "tests" /
              f"{source.stem}.py").read_text(encoding="utf-8"), scope)
        cases = scope["test"]["suites"][0]["cases"]
        assert [(c["name"], c["points"]) for c in cases] == [(c.name, c.points)
                                                              for _, c in checks]
