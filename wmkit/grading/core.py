"""The pieces every exercise shares: checks, points, results, and `check` for notebooks.

An exercise has parts; a part is one function the learner writes (same name and signature as
the library's, so a solved exercise is a drop-in) and the library code it stands for (its
counterparts); a part has checks, each worth points. A check calls the learner's function on
randomised inputs and compares it with the library's reference implementation, so a
hard-coded answer cannot pass; a call during which library or grader code ran scores nothing
(see `tracing`). The same checks run in three places: `check(...)` in the notebook (feedback),
`assert_check(...)` in nbgrader and otter-grader test cells, and the grader (`python -m
wmkit.grading`), which runs them in its own process and calls the learner's function in a
separate kernel.
"""

from __future__ import annotations

import contextlib
import html
import io
import random
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from .tracing import Findings, Forbidden, code_of

OUTPUT_LIMIT = 10_000
"""Characters of the learner's printed output kept per check: a print flood stops here."""

CheckFn = Callable[[Any, int], None]


class CheckFailed(AssertionError):
    """A check's verdict on wrong behaviour; its message is what the learner reads."""


class KernelTrouble(BaseException):  # noqa: N818  (not an error of the learner's: a status)
    """The kernel running the learner's function timed out or died during a check.

    A BaseException, so that no `except Exception` in a check can swallow it."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class Submitted(Protocol):
    """The learner's function as checks see it: `observe` calls it (see `sandbox`)."""

    findings: Findings

    def observe(self, args: Any, kwargs: dict[str, Any], probes: Any) -> Any: ...


@dataclass(frozen=True)
class Check:
    """One behaviour of one function, worth `points`.

    `run(student, seed)` raises `CheckFailed` (or any exception the student's code raises)
    when the behaviour is wrong, and returns None when it is right.
    """

    name: str
    points: float
    run: CheckFn


@dataclass
class Part:
    """One function the learner writes, the checks that grade it, and its counterparts: the
    library code that does the same work, which may not run while the function is graded."""

    function: str
    checks: list[Check] = field(default_factory=list)
    counterparts: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def max_points(self) -> float:
        return sum(c.points for c in self.checks)


@dataclass
class Exercise:
    """An exercise notebook: an id (its file name without .ipynb), a title and its parts.

    `kernel_setup`: code the grader runs in the learner's kernel before their cells, e.g. to
    import a module the library imports on first use (not inside a timed, watched call)."""

    id: str
    title: str
    parts: dict[str, Part] = field(default_factory=dict)
    kernel_setup: str = ""

    @property
    def max_points(self) -> float:
        return sum(p.max_points for p in self.parts.values())

    def counterparts(self, function: str, *code: Any) -> None:
        """Declare the library functions (methods, properties) that do `function`'s work."""
        part = self.parts.setdefault(function, Part(function))
        for obj in code:
            if code_of(obj) is None:
                raise ValueError(f"code: {obj!r} is not a function, method or property")
            inner = getattr(obj, "fget", obj)
            part.counterparts.append((getattr(inner, "__qualname__", repr(obj)), obj))

    def check(self, function: str, points: float, name: str) -> Callable[[CheckFn], CheckFn]:
        """Decorator: register `fn(student, seed)` as a check of `function` worth `points`."""
        if points <= 0:
            raise ValueError(f"points: expected a positive number, got {points!r}")

        def register(fn: CheckFn) -> CheckFn:
            part = self.parts.setdefault(function, Part(function))
            if any(c.name == name for c in part.checks):
                raise ValueError(f"name: {self.id}.{function} already has a check {name!r}")
            part.checks.append(Check(name, points, fn))
            return fn

        return register


EXERCISES: dict[str, Exercise] = {}
"""Every registered exercise by id, in the order the modules define them."""


def exercise(exercise_id: str, title: str, kernel_setup: str = "") -> Exercise:
    """Create and register an exercise (done once per module in `wmkit.grading.checks`)."""
    if exercise_id in EXERCISES:
        raise ValueError(f"exercise_id: {exercise_id!r} is already registered")
    EXERCISES[exercise_id] = Exercise(exercise_id, title, kernel_setup=kernel_setup)
    return EXERCISES[exercise_id]


def all_exercises() -> dict[str, Exercise]:
    """Every exercise, by id in id order (registering them on first use)."""
    from . import checks  # noqa: F401  (each module of checks registers its exercise)

    return dict(sorted(EXERCISES.items()))


_forbidden_cache: dict[int, Forbidden] = {}


def forbidden_code(part: Part) -> Forbidden:
    """The code that may not run while `part`'s function is graded: its library
    counterparts and every function of the grader's checks (the references)."""
    if id(part) not in _forbidden_cache:
        from . import checks
        from .tracing import module_functions

        grader = [(f"the grader's {name}", fn) for module in checks.MODULES
                  for name, fn in module_functions(module)]
        _forbidden_cache[id(part)] = Forbidden.of(grader) | Forbidden.of(
            (f"the library's {n}", c) for n, c in part.counterparts)
    return _forbidden_cache[id(part)]


def get_exercise(exercise_id: str) -> Exercise:
    """The registered exercise `exercise_id`, or a ValueError listing the known ones."""
    if exercise_id not in all_exercises():
        raise ValueError(f"exercise_id: unknown {exercise_id!r}; expected one of "
                         f"{', '.join(EXERCISES)}")
    return EXERCISES[exercise_id]


# -- running one check -------------------------------------------------------------------------


@dataclass
class CheckResult:
    """The outcome of one check: status is passed, failed, error, timeout or not run."""

    exercise: str
    part: str
    check: str
    points: float
    max_points: float
    status: str
    message: str = ""
    flags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _CappedText(io.TextIOBase):
    """A text sink keeping the first `limit` characters and counting the rest."""

    def __init__(self, limit: int) -> None:
        self.limit, self.kept, self.dropped = limit, io.StringIO(), 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        room = self.limit - self.kept.tell()
        self.kept.write(text[: max(room, 0)])
        self.dropped += max(len(text) - max(room, 0), 0)
        return len(text)


@contextlib.contextmanager
def capped_output(limit: int = OUTPUT_LIMIT) -> Iterator[_CappedText]:
    """Send prints to a capped buffer, so a learner's print flood costs no memory or pipe."""
    sink = _CappedText(limit)
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield sink


def check_seed(seed: int, exercise_id: str, part: str, index: int) -> int:
    """A seed per check, derived from the run's seed: checks stay independent and repeatable."""
    return zlib.crc32(f"{seed}:{exercise_id}:{part}:{index}".encode())


def describe_error(function: str, error: BaseException) -> str:
    """What a learner should read when their function raised instead of answering."""
    if isinstance(error, NotImplementedError):
        return f"not done yet: {function} still raises NotImplementedError"
    if isinstance(error, SystemExit):
        return f"{function} called sys.exit({error.code!r}); return a value instead"
    text = str(error).strip().splitlines()
    first = text[0][:300] if text else ""
    name = getattr(error, "type_name", type(error).__name__)
    return f"{function} raised {name}: {first}".rstrip(": ")


def blocked_message(function: str, findings: Findings) -> str:
    """What a learner reads when their function ran library code or defeated the watch."""
    if findings.library:
        return (f"{function} runs {findings.library[0]}: write it yourself, that is the "
                "exercise (no points for the library's own code)")
    return (f"{function} {findings.tampering[0]}: the grader cannot see what it runs, so it "
            "scores nothing")


def run_check(exercise_id: str, part: Part, index: int, student: Any, seed: int,
              output_limit: int = OUTPUT_LIMIT) -> CheckResult:
    """Run check `index` of `part` on the learner's function: a plain function (called here,
    see `sandbox.LocalFunction`) or a `Submitted` one (the grader's kernel). Never raises,
    except KeyboardInterrupt (how a notebook user stops a check that runs too long)."""
    from .sandbox import LocalFunction

    check = part.checks[index]

    def result(status: str, message: str = "", flags: list[str] | None = None) -> CheckResult:
        points = check.points if status == "passed" else 0.0
        return CheckResult(exercise_id, part.function, check.name, points, check.points,
                           status, message, flags or [])

    if student is None:
        return result("failed", f"{part.function} is not defined: run its answer cell, and keep "
                                "the function's name")
    if not hasattr(student, "observe"):
        if not callable(student):
            return result("failed",
                          f"{part.function} is a {type(student).__name__}, not a function")
        student = LocalFunction(student, forbidden_code(part))
    student.findings = Findings()
    try:
        with capped_output(output_limit):
            check.run(student, check_seed(seed, exercise_id, part.function, index))
    except KernelTrouble as trouble:
        return result(trouble.status, trouble.message, student.findings.flags())
    except CheckFailed as failure:
        outcome = ("failed", str(failure))
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # noqa: B036  (SystemExit from learner code is a wrong answer)
        outcome = ("failed", describe_error(part.function, error))
    else:
        outcome = ("passed", "")
    findings = student.findings
    if findings.blocking:  # library code ran, or the watch was defeated: no points
        return result("failed", blocked_message(part.function, findings), findings.flags())
    return result(*outcome, findings.flags())


def assert_check(exercise_id: str, function: Callable[..., Any], check: str | int,
                 seed: int | None = None) -> None:
    """Run one check (by name, or by its number in the part) on `function` and raise
    AssertionError with its message unless it passes.

    This is what nbgrader's test cells and otter-grader's test cases call: one check each,
    worth its points there too. Prints nothing when the check passes.
    """
    ex = get_exercise(exercise_id)
    name = getattr(function, "__name__", "")
    part = ex.parts.get(name) or (next(iter(ex.parts.values())) if len(ex.parts) == 1 else None)
    if part is None:
        raise ValueError(f"function: {name!r} is not part of {exercise_id}; expected one of "
                         f"{', '.join(ex.parts)}")
    names = [c.name for c in part.checks]
    index = check if isinstance(check, int) and 0 <= check < len(names) else \
        names.index(check) if check in names else None
    if index is None:
        raise ValueError(f"check: {check!r} is not a check of {part.function}; expected a "
                         f"number below {len(names)} or one of {names}")
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    outcome = run_check(exercise_id, part, index, function, seed)
    if outcome.status != "passed":
        raise AssertionError(f"{part.function}: {names[index]}: {outcome.message} "
                             f"(seed {seed})")


# -- feedback inside the notebook --------------------------------------------------------------


class Scored:
    """`score` and `max_score` for anything that holds `results: list[CheckResult]`."""

    results: list[CheckResult]

    @property
    def score(self) -> float:
        return sum(r.points for r in self.results)

    @property
    def max_score(self) -> float:
        return sum(r.max_points for r in self.results)


@dataclass
class Report(Scored):
    """Results of some checks, shown as a table in a notebook (text or HTML)."""

    results: list[CheckResult]
    seed: int | None = None

    @property
    def full_marks(self) -> bool:
        return bool(self.results) and all(r.status == "passed" for r in self.results)

    def __str__(self) -> str:
        lines = [format_result(r) for r in self.results]
        lines.append(f"score: {fmt_points(self.score)}/{fmt_points(self.max_score)}"
                     + (f"   (seed {self.seed})" if self.seed is not None else ""))
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{'&#x2705;' if r.status == 'passed' else '&#x274C;'}</td>"
            f"<td>{fmt_points(r.points)}/{fmt_points(r.max_points)}</td>"
            f"<td><code>{html.escape(r.part)}</code></td><td>{html.escape(r.check)}</td>"
            f"<td>{html.escape(r.message)}</td></tr>" for r in self.results)
        seed = f" (seed {self.seed})" if self.seed is not None else ""
        return (f"<table><tr><th></th><th>points</th><th>function</th><th>check</th>"
                f"<th>feedback</th></tr>{rows}</table><p><b>score: {fmt_points(self.score)}/"
                f"{fmt_points(self.max_score)}</b>{seed}</p>")


def fmt_points(points: float) -> str:
    """2.0 -> '2', 1.5 -> '1.5'."""
    return f"{points:g}"


def format_result(r: CheckResult) -> str:
    """One line of a score table: mark, points, function, check and feedback."""
    mark = "ok  " if r.status == "passed" else "FAIL"
    line = f"{mark} {fmt_points(r.points):>3}/{fmt_points(r.max_points):<3} {r.part}: {r.check}"
    return line + (f"\n            -> {r.message}" if r.message else "")


_require_full_marks = False


def require_full_marks(required: bool = True) -> None:
    """From now on `check` raises unless everything passes (solution notebooks turn this on,
    so that running them under nbval fails when a solution or a check breaks)."""
    global _require_full_marks
    _require_full_marks = required


def check(exercise_id: str, *functions: Callable[..., Any], seed: int | None = None,
          **named: Callable[..., Any]) -> Report:
    """Run the grader's checks for your functions now, and return the score table.

    Pass functions positionally (matched to the exercise's parts by their name) or by part
    name (`check("02_rollout", imagine=my_imagine)`). Every call draws fresh random inputs
    unless you give a `seed`.
    """
    ex = get_exercise(exercise_id)
    chosen = dict(named)
    for fn in functions:
        name = getattr(fn, "__name__", "")
        if name not in ex.parts and len(ex.parts) == 1:
            name = next(iter(ex.parts))
        if name not in ex.parts:
            raise ValueError(f"functions: {name!r} is not part of {exercise_id}; expected one of "
                             f"{', '.join(ex.parts)}")
        chosen[name] = fn
    unknown = set(chosen) - set(ex.parts)
    if unknown:
        raise ValueError(f"named: {sorted(unknown)} are not parts of {exercise_id}")
    if not chosen:
        raise ValueError(f"functions: give at least one of {', '.join(ex.parts)}")
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    results = [run_check(exercise_id, part, i, chosen[name], seed)
               for name, part in ex.parts.items() if name in chosen
               for i in range(len(part.checks))]
    report = Report(results, seed)
    if _require_full_marks and not report.full_marks:
        raise AssertionError(f"expected full marks:\n{report}")
    return report
