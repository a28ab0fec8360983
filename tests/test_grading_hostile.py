"""The grader against submissions that try to cheat or to break it (issue 16's table).

One run of the command line grades every submission below, as an instructor would, from a
copy of the kit installed outside the checkout (working directory and PYTHONPATH elsewhere).
Each test then reads one row of the results: the hostile notebook scores 0 or is flagged,
and the honest notebooks graded before and after it score full marks.
"""

import csv
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from wmkit.grading.isolation import python_argv

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "exercises" / "solutions"
STUDENT = ROOT / "exercises"

STUB_ANSWER = "# YOUR CODE HERE\n    raise NotImplementedError"


def with_answer(source: Path, target: Path, answer: str, keep_stub: bool = False) -> Path:
    """A copy of notebook `source` whose first answer cell is `answer` (after the stub's own
    code when `keep_stub`)."""
    nb = nbformat.read(source, as_version=4)
    cell = next(c for c in nb.cells if "answer" in c.metadata.get("tags", []))
    cell.source = (cell.source + "\n\n\n" if keep_stub else "") + answer
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    return target


def hostile_submissions(root: Path) -> None:
    """Every row of the issue's table, and honest notebooks around them (graded in order)."""
    loss, stub = SOLUTION / "01_model_loss.ipynb", STUDENT / "01_model_loss.ipynb"
    shutil.copy(loss, root / "=2+5.ipynb")  # honest, graded first; its name is a formula
    with_answer(stub, root / "b_library" / "01_model_loss.ipynb",
                "one_step_loss = wm.MLPWorldModel.loss")
    with_answer(stub, root / "c_reference" / "01_model_loss.ipynb",
                "from wmkit.grading.checks.model_loss import _reference_loss as one_step_loss")
    with_answer(stub, root / "d_run_check" / "01_model_loss.ipynb", keep_stub=True, answer=(
        "import wmkit.grading.core\n\n\n"
        "def run_check(exercise_id, part, index, student, seed, output_limit=0):\n"
        "    check = part.checks[index]\n"
        "    return grading.CheckResult(exercise_id, part.function, check.name, check.points,\n"
        "                               check.points, 'passed')\n\n\n"
        "wmkit.grading.core.run_check = grading.run_check = run_check\n"
        "import wmkit.grading.kernel\n"
        "wmkit.grading.kernel.run_check = run_check\n"))
    path = with_answer(stub, root / "e_check_noop" / "01_model_loss.ipynb", keep_stub=True,
                       answer=("for exercise in grading.all_exercises().values():\n"
                               "    for part in exercise.parts.values():\n"
                               "        for check in part.checks:\n"
                               "            object.__setattr__(check, 'run', lambda s, n: None)\n"))
    # A second answer cell reports (as its error) what of the checkout the kernel can see.
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        f"import os, sys\nROOT = {str(ROOT)!r}\n"
        "raise RuntimeError(repr(dict(path=[p for p in sys.path if p in ('', '.') or "
        "p.startswith(ROOT) and not p.startswith(sys.prefix)], "
        "cwd=os.getcwd().startswith(ROOT), wmkit=wm.__file__)))",
        metadata={"tags": ["answer"]}))
    nbformat.write(nb, path)
    read_solution = (
        "import json\nfrom pathlib import Path\n\n"
        "nb = json.loads((ROOT / 'exercises' / 'solutions' / '01_model_loss.ipynb').read_text())\n"
        "exec(''.join(next(c['source'] for c in nb['cells'] if 'answer' in c['metadata']"
        ".get('tags', []))))\n")
    # The solutions, read through the checkout's absolute path, then (second answer cell,
    # which raises) through wm.__file__, as the issue found them.
    path = with_answer(stub, root / "f_solutions" / "01_model_loss.ipynb",
                       f"ROOT = __import__('pathlib').Path({str(ROOT)!r})\n" + read_solution)
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        "ROOT = __import__('pathlib').Path(wm.__file__).resolve().parents[1]\n" + read_solution,
        metadata={"tags": ["answer"]}))
    nbformat.write(nb, path)
    with_answer(stub, root / "h_kill" / "01_model_loss.ipynb", keep_stub=True,
                answer="import os\nimport signal\n\nos.kill(os.getppid(), signal.SIGKILL)\n")
    with_answer(stub, root / "i_disk" / "01_model_loss.ipynb", keep_stub=True, answer=(
        "from pathlib import Path\n\n"
        "core = Path(wm.__file__).parent / 'grading' / 'core.py'\n"
        "with open(core, 'a') as handle:\n"
        "    handle.write('\\n\\ndef run_check(exercise_id, part, index, *args, **kwargs):\\n'\n"
        "                 '    check = part.checks[index]\\n'\n"
        "                 '    return CheckResult(exercise_id, part.function, check.name,\\n'\n"
        "                 '                       check.points, check.points, \"passed\")\\n')\n"))
    (root / "j_after").mkdir()
    shutil.copy(stub, root / "j_after" / "01_model_loss.ipynb")  # graded after the above
    shutil.copy(SOLUTION / "03_planner.ipynb", root / "j_after" / "03_planner.ipynb")
    (root / "j_after" / "scratch.ipynb").write_text(
        nbformat.writes(nbformat.v4.new_notebook()), encoding="utf-8")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade the hostile submissions with the command line, from a copy of the kit installed
    outside the checkout; return (exit status, stdout, stderr, gradebook rows, results, json,
    submissions' bytes before, and after)."""
    base = tmp_path_factory.mktemp("hostile")
    submissions = base / "submissions"
    submissions.mkdir()
    hostile_submissions(submissions)
    before = {p: p.read_bytes() for p in submissions.rglob("*.ipynb")}
    core = ROOT / "wmkit" / "grading" / "core.py"  # what i_disk writes to, in its own copy
    core_before = digest(core)
    installed = base / "site"
    shutil.copytree(ROOT / "wmkit", installed / "wmkit",
                    ignore=shutil.ignore_patterns("__pycache__"))
    out, workdir = base / "grades", base / "elsewhere"
    workdir.mkdir()
    argv = python_argv(installed, (
        "import runpy, sys, wmkit; "
        f"assert wmkit.__file__.startswith({str(installed)!r}), wmkit.__file__; "
        f"sys.argv = ['wmkit.grading', {str(submissions)!r}, '--out', {str(out)!r}, "
        "'--timeout', '10', '--seed', '5', '--jobs', '2']; "
        "runpy.run_module('wmkit.grading', run_name='__main__')"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    with (out / "gradebook.csv").open(encoding="utf-8") as handle:
        book = {row["student"]: row for row in csv.DictReader(handle)}
    with (out / "results.csv").open(encoding="utf-8") as handle:
        results = list(csv.DictReader(handle))
    report = json.loads((out / "gradebook.json").read_text(encoding="utf-8"))
    assert digest(core) == core_before
    return {"code": done.returncode, "out": done.stdout, "err": done.stderr, "book": book,
            "results": results, "report": report, "before": before,
            "after": {p: p.read_bytes() for p in submissions.rglob("*.ipynb")}}


def checks_of(graded, student: str, exercise: str = "01_model_loss") -> list[dict]:
    return [r for r in graded["results"] if r["student"] == student and
            r["exercise"] == exercise]


def notebook(graded, student: str, exercise: str = "01_model_loss") -> dict:
    return next(n for n in graded["report"]["notebooks"]
                if n["student"] == student and n["exercise"] == exercise)


def test_honest_notebooks_around_the_hostile_ones_are_graded_in_full(graded):
    book = graded["book"]
    assert book["'=2+5"]["01_model_loss"] == "8" and book["'=2+5"]["flags"] == ""
    assert book["j_after"]["03_planner"] == "7" and book["j_after"]["01_model_loss"] == "0"
    assert all(r["status"] == "failed" and r["message"].startswith("not done yet")
               for r in checks_of(graded, "j_after"))
    assert graded["before"] == graded["after"]  # submissions are never written
    assert "skipped" in graded["err"] and "scratch.ipynb" in graded["err"]
    assert graded["report"]["settings"]["seed"] == 5


def test_the_class_attribute_as_the_answer_scores_nothing_and_is_flagged(graded):
    rows = checks_of(graded, "b_library")
    assert len(rows) == 7 and all(r["points"] == "0" for r in rows)
    assert all("runs the library's MLPWorldModel.loss" in r["message"] for r in rows)
    assert "library: the library's MLPWorldModel.loss" in graded["book"]["b_library"]["flags"]


def test_importing_the_grader_reference_fails_in_the_kernel(graded):
    assert graded["book"]["c_reference"]["01_model_loss"] == "0"
    notes = notebook(graded, "c_reference")["notes"]
    assert any("ModuleNotFoundError" in n and "wmkit.grading.checks" in n for n in notes)
    assert "review: the submitted code reaches for" in graded["book"]["c_reference"]["flags"]


def test_replacing_run_check_in_the_kernel_earns_nothing(graded):
    assert graded["book"]["d_run_check"]["01_model_loss"] == "0"
    assert "tampering: the submitted code refers to the grader's internals" in \
        graded["book"]["d_run_check"]["flags"]


def test_making_every_check_a_no_op_earns_nothing(graded):
    assert graded["book"]["e_check_noop"]["01_model_loss"] == "0"
    assert any("Error" in n and "checks" in n for n in notebook(graded, "e_check_noop")["notes"])


def test_the_kernel_sees_nothing_of_the_checkout(graded):
    notes = notebook(graded, "e_check_noop")["notes"]
    seen = next(n for n in notes if "RuntimeError" in n)
    assert "'path': []" in seen and "'cwd': False" in seen, seen
    assert "/kit/wmkit/__init__.py" in seen and str(ROOT) not in seen.split("'wmkit'")[1]


def test_the_solutions_are_not_beside_the_kit_and_exec_ed_code_scores_nothing(graded):
    # Through wm.__file__: the kernel's kit is a copy without exercises/.
    notes = notebook(graded, "f_solutions")["notes"]
    assert any("FileNotFoundError" in n and "/kit/exercises/solutions" in n for n in notes)
    # Through the checkout's absolute path: the code runs, but was not written in a cell.
    rows = checks_of(graded, "f_solutions")
    assert len(rows) == 7
    assert all(r["points"] == "0" and "not written in the notebook's cells" in r["message"]
               for r in rows)
    assert "review: called builtins.exec" in graded["book"]["f_solutions"]["flags"]


def test_killing_the_grading_process_loses_only_that_notebook(graded):
    grade = notebook(graded, "h_kill")
    assert grade["status"] == "grader error" and grade["score"] == 0
    assert any("killed by SIGKILL" in n for n in grade["notes"])
    assert graded["code"] == 1  # not every notebook could be graded
    assert "grader error" in graded["book"]["h_kill"]["flags"]


def test_writing_to_the_kit_on_disk_changes_nothing_for_later_submissions(graded):
    assert graded["book"]["i_disk"]["01_model_loss"] == "0"
    assert graded["book"]["j_after"]["01_model_loss"] == "0"  # an untouched stub, after it


def test_a_formula_file_name_is_neutralised_in_the_gradebook(graded):
    assert graded["book"]["'=2+5"]["01_model_loss"] == "8"
    assert "=2+5" not in graded["book"]
    assert all(r["student"] == "'=2+5" for r in graded["results"] if "2+5" in r["student"])


def test_every_notebook_has_a_row_written_as_it_finished(graded):
    students = {"'=2+5", "b_library", "c_reference", "d_run_check", "e_check_noop",
                "f_solutions", "h_kill", "i_disk", "j_after"}
    assert set(graded["book"]) == students
    assert all(row["max_total"] == "15" for row in graded["book"].values())  # 8 + 7
