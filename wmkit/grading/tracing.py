"""Watch what code a learner's function runs: the library's own answer, and tampering.

A check calls the learner's function under a `Watch`: a `sys.setprofile` hook that sees every
Python function entered and every builtin called while the function runs. It reports

- **library**: code whose fingerprint is a library counterpart's or the grader's (the class
  attribute itself, a wrapper around it, a reference captured before the call, or a verbatim
  copy exec'ed from the library's source): the check scores 0;
- **tampering**: the learner's code switched the watch off or replaced it (`sys.setprofile`,
  `sys.settrace`, ctypes, ...) or started code it cannot see (processes, threads): the check
  scores 0;
- **review**: things an honest answer has no need for (`exec`, `eval`, reading files,
  signalling processes, ...): the score stands, the gradebook flags it for the instructor.

A fingerprint hashes a code object's bytecode, names, variable names and constants
(recursively), not its file, name, line numbers or docstring: the library's function and a
copy of it exec'ed from its source get the same fingerprint; an honest answer does not.
Fingerprints depend on the Python version, so the grader computes them on the interpreter
that runs the kernel.

The watch runs in the same process as the learner's code, so a learner who sets out to defeat
it can; `static_findings` therefore also scans the submitted cells as text, in the grader.
"""

from __future__ import annotations

import dis
import hashlib
import json
import re
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType, FrameType, FunctionType
from typing import Any

# -- fingerprints ------------------------------------------------------------------------------


def fingerprint(code: CodeType) -> str:
    """A hash of what `code` does (its instructions, with the names, variables and constants
    they use, and nested code), not of where it was written (file, function name, line
    numbers), its docstring, or how the compiler specialised it for its module."""
    digest = hashlib.sha256()
    _feed(code, digest)
    return digest.hexdigest()[:32]


# Instructions that carry no meaning of their own, or whose presence depends on the module the
# code was compiled in (3.11 loads `module.f` differently when `module` is imported in the same
# file): a function copied out of its module compiles to the same stream once these go.
_SKIP = {"CACHE", "NOP", "RESUME", "PRECALL", "EXTENDED_ARG", "PUSH_NULL", "COPY_FREE_VARS",
         "MAKE_CELL", "RETURN_GENERATOR", "KW_NAMES"}
_SAME = {"LOAD_METHOD": "LOAD_ATTR", "CALL_METHOD": "CALL", "CALL_FUNCTION": "CALL",
         "CALL_FUNCTION_KW": "CALL", "JUMP_ABSOLUTE": "JUMP", "JUMP_FORWARD": "JUMP",
         "JUMP_BACKWARD": "JUMP", "JUMP_BACKWARD_NO_INTERRUPT": "JUMP"}


def _feed(code: CodeType, digest: Any) -> None:
    digest.update(repr((code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount,
                        code.co_varnames[:code.co_argcount])).encode())
    for instruction in dis.get_instructions(code):
        op = instruction.opname
        if op in _SKIP:
            continue
        op = _SAME.get(op, op)
        if isinstance(instruction.argval, CodeType):
            digest.update(f"{op}:<code>".encode())
            _feed(instruction.argval, digest)
            continue
        if instruction.opcode in dis.hasjrel or instruction.opcode in dis.hasjabs:
            arg = ""  # offsets move with the instructions skipped above
        elif instruction.opcode in dis.hasconst:
            arg = _const_repr(instruction.argval)
        else:
            arg = str(instruction.argval)
        digest.update(f"{op}:{arg};".encode())


def _const_repr(const: Any) -> str:
    if isinstance(const, frozenset):  # set order varies with hash randomisation
        return "frozenset(" + ",".join(sorted(_const_repr(c) for c in const)) + ")"
    if isinstance(const, tuple):
        return "(" + ",".join(_const_repr(c) for c in const) + ")"
    return f"{type(const).__name__}:{const!r}"


def code_of(obj: Any) -> CodeType | None:
    """The code object behind a function, method, property or staticmethod, else None."""
    for attr in ("fget", "__func__", "__wrapped__"):
        inner = getattr(obj, attr, None)
        if inner is not None and inner is not obj:
            found = code_of(inner)
            if found is not None:
                return found
    code = getattr(obj, "__code__", None)
    return code if isinstance(code, CodeType) else None


COPY_MIN_INSTRUCTIONS = 20
"""A copy of library code shorter than this is flagged for review, not scored 0: a one-line
function written independently can match the library's instruction for instruction."""


def _shape(code: CodeType) -> tuple[int, tuple[str, ...]]:
    """A cheap key (arguments, local names) that a copy shares with its original: only code
    whose shape is forbidden is worth fingerprinting while a function runs."""
    return code.co_argcount, tuple(code.co_varnames)


def _size(code: CodeType) -> int:
    return sum(1 for i in dis.get_instructions(code) if i.opname not in _SKIP)


@dataclass
class Forbidden:
    """Code that may not run while a learner's function is graded, by fingerprint."""

    names: dict[str, str] = field(default_factory=dict)  # fingerprint -> readable name
    sizes: dict[str, int] = field(default_factory=dict)  # fingerprint -> instructions
    shapes: set[tuple[int, tuple[str, ...]]] = field(default_factory=set)

    @classmethod
    def of(cls, named: Iterable[tuple[str, Any]]) -> Forbidden:
        """From (name, function or property) pairs."""
        found = cls()
        for name, obj in named:
            code = code_of(obj)
            if code is not None:
                key = fingerprint(code)
                found.names[key], found.sizes[key] = name, _size(code)
                found.shapes.add(_shape(code))
        return found

    def __or__(self, other: Forbidden) -> Forbidden:
        return Forbidden({**self.names, **other.names}, {**self.sizes, **other.sizes},
                         self.shapes | other.shapes)

    def match(self, code: CodeType) -> str | None:
        """The fingerprint of `code` if it is forbidden, else None."""
        if _shape(code) not in self.shapes:
            return None
        key = fingerprint(code)
        return key if key in self.names else None

    def to_json(self) -> str:
        return json.dumps({"names": self.names, "sizes": self.sizes,
                           "shapes": sorted([a, list(v)] for a, v in self.shapes)})

    @classmethod
    def from_json(cls, text: str) -> Forbidden:
        data = json.loads(text)
        return cls({str(k): str(v) for k, v in data.get("names", {}).items()},
                   {str(k): int(v) for k, v in data.get("sizes", {}).items()},
                   {(int(a), tuple(map(str, v))) for a, v in data.get("shapes", [])})


def module_functions(module: Any) -> list[tuple[str, Any]]:
    """(qualified name, function) for every function and method defined in `module`."""
    found: list[tuple[str, Any]] = []
    for value in vars(module).values():
        if isinstance(value, FunctionType) and value.__module__ == module.__name__:
            found.append((value.__qualname__, value))
        elif isinstance(value, type) and value.__module__ == module.__name__:
            found += [(f"{value.__qualname__}.{k}", v) for k, v in vars(value).items()
                      if code_of(v) is not None]
    return found


# -- the watch ----------------------------------------------------------------------------------

# (module, name) of builtins that a learner's code calling them directly is reported for.
TAMPERING_BUILTINS = {
    ("sys", "setprofile"), ("sys", "settrace"), ("sys", "getprofile"), ("sys", "gettrace"),
    ("sys", "_getframe"), ("sys", "_current_frames"), ("gc", "get_objects"),
    ("gc", "get_referrers"), ("gc", "get_referents"), ("posix", "fork"), ("nt", "fork"),
    ("posix", "system"), ("nt", "system"), ("posix", "posix_spawn"), ("posix", "forkpty"),
    ("_thread", "start_new_thread"), ("_thread", "start_joinable_thread"),
}
REVIEW_BUILTINS = {
    ("builtins", "exec"), ("builtins", "eval"), ("builtins", "compile"), ("io", "open"),
    ("_io", "open"), ("builtins", "open"), ("posix", "open"), ("posix", "kill"),
    ("posix", "killpg"), ("nt", "kill"), ("marshal", "loads"), ("_pickle", "loads"),
    ("_pickle", "load"), ("posix", "listdir"), ("posix", "scandir"),
}
# Python-level functions (module prefix, qualified name prefix) likewise.
TAMPERING_FUNCTIONS = [
    ("threading", "setprofile"), ("threading", "settrace"), ("threading", "Thread.start"),
    ("subprocess", "Popen.__init__"), ("multiprocessing", ""), ("concurrent.futures", ""),
    ("ctypes", ""), ("cProfile", ""), ("profile", ""), ("bdb", ""), ("pdb", ""),
    ("trace", ""), ("os", "system"), ("os", "fork"), ("os", "spawn"), ("os", "exec"),
    ("os", "popen"), ("inspect", "currentframe"), ("inspect", "stack"),
]
REVIEW_FUNCTIONS = [
    ("importlib", "import_module"), ("importlib", "reload"), ("importlib.util", ""),
    ("importlib.machinery", ""), ("pathlib", "Path.read"), ("pathlib", "Path.open"),
    ("pathlib", "Path.write"), ("inspect", "getsource"), ("linecache", "getline"),
    ("pickle", ""), ("shutil", ""), ("socket", ""), ("signal", ""), ("os", "kill"),
    ("json", "load"), ("nbformat", "read"), ("runpy", ""),
]
_MONITORING = ("sys.monitoring", "monitoring")


@dataclass
class Findings:
    """What a watch saw, as short human-readable labels, without duplicates."""

    library: list[str] = field(default_factory=list)
    tampering: list[str] = field(default_factory=list)
    review: list[str] = field(default_factory=list)

    def add(self, kind: str, label: str) -> None:
        labels = getattr(self, kind)
        if label not in labels and len(labels) < 20:
            labels.append(label)

    def merge(self, other: Findings | dict[str, list[str]]) -> None:
        data = other if isinstance(other, dict) else other.to_dict()
        for kind in ("library", "tampering", "review"):
            for label in data.get(kind, [])[:20]:
                self.add(kind, str(label)[:200])

    @property
    def blocking(self) -> bool:
        """Whether the watched code may not score: library code ran, or the watch was defeated."""
        return bool(self.library or self.tampering)

    def to_dict(self) -> dict[str, list[str]]:
        return {"library": list(self.library), "tampering": list(self.tampering),
                "review": list(self.review)}

    def flags(self) -> list[str]:
        """The labels as gradebook flags: `library: X`, `tampering: X`, `review: X`."""
        return [f"{kind}: {label}" for kind in ("library", "tampering", "review")
                for label in getattr(self, kind)]


def _trusted_roots() -> tuple[str, ...]:
    """Folders whose code is the interpreter's, installed packages' or the kit's own."""
    import site
    import sysconfig

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             *sysconfig.get_paths().values()}
    try:
        roots.update(site.getsitepackages())
        roots.add(site.getusersitepackages())
    except AttributeError:  # virtualenv's old site module
        pass
    return tuple(sorted({r.rstrip("/") + "/" for r in roots if r}))


class Watch:
    """Context manager: watch the code run inside the block (this thread and new threads).

    `forbidden`: the code that may not run (library counterparts and the grader's
    references). `extra_trusted`: folders, besides the interpreter's and the
    installed packages', whose code is not the learner's (the kit's copy).
    """

    def __init__(self, forbidden: Forbidden, extra_trusted: Iterable[str] = ()) -> None:
        self.forbidden = forbidden
        self.findings = Findings()
        kit = str(Path(__file__).resolve().parents[1])  # wmkit itself, wherever it is
        self._trusted = _trusted_roots() + tuple(p.rstrip("/") + "/"
                                                 for p in (kit, *extra_trusted))
        self._seen: dict[CodeType, str | None] = {}
        self._learner: dict[str, bool] = {}
        self._set = sys.setprofile  # captured now: a later patch of sys does not reach us
        self._get = sys.getprofile
        self._set_threads = threading.setprofile
        self._previous: Any = None
        self._hook = self._profile  # one bound method: `sys.getprofile() is self._hook` holds

    # -- the hook -------------------------------------------------------------------------

    def _is_learner(self, frame: FrameType | None) -> bool:
        if frame is None:
            return False
        filename = frame.f_code.co_filename
        known = self._learner.get(filename)
        if known is None:
            known = not (filename.startswith("<frozen") or filename.startswith(self._trusted))
            self._learner[filename] = known
        return known

    def _profile(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            key = self._seen.get(code, "")
            if key == "":
                key = self._seen[code] = self.forbidden.match(code)
            if key:
                name = self.forbidden.names[key]
                if not self._is_learner(frame):
                    self.findings.add("library", name)
                elif self.forbidden.sizes[key] >= COPY_MIN_INSTRUCTIONS:
                    self.findings.add("library", name + " (a copy of it)")
                else:
                    self.findings.add("review", f"code identical to {name}")
            if self._is_learner(frame.f_back):
                self._python_call(frame)
        elif event == "c_call" and self._is_learner(frame):
            module = getattr(arg, "__module__", None) or type(getattr(arg, "__self__", None)
                                                               ).__module__
            name = getattr(arg, "__name__", "")
            label = f"{module}.{name}"
            if (module, name) in TAMPERING_BUILTINS or module.startswith(_MONITORING):
                self.findings.add("tampering", f"called {label}")
            elif (module, name) in REVIEW_BUILTINS:
                self.findings.add("review", f"called {label}")

    def _python_call(self, frame: FrameType) -> None:
        """A Python function called from the learner's code: is it on a watch list?"""
        module = frame.f_globals.get("__name__", "")
        qualname = getattr(frame.f_code, "co_qualname", frame.f_code.co_name)
        for kind, table in (("tampering", TAMPERING_FUNCTIONS), ("review", REVIEW_FUNCTIONS)):
            for prefix, qual in table:
                if (module == prefix or not qual and module.startswith(prefix + ".")) and \
                        qualname.startswith(qual):
                    self.findings.add(kind, f"called {module}.{qualname}")
                    return

    # -- on and off -----------------------------------------------------------------------

    def __enter__(self) -> Watch:
        self._previous = self._get()
        self._set_threads(self._hook)
        self._set(self._hook)
        return self

    def __exit__(self, *exc: Any) -> None:
        still_on = self._get() is self._hook
        self._set(self._previous)
        self._set_threads(None)
        if not still_on:
            self.findings.add("tampering", "the grader's watch was switched off or replaced")

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self:
            return fn(*args, **kwargs)


# -- reading the submitted cells as text (in the grader, where the learner cannot reach) -------

STATIC_PATTERNS = [
    # An answer never needs the grader's own modules: only `grading.check(...)` in a notebook.
    ("tampering", r"wmkit\.grading\.(?!check\b)|grading\.(?:core|kernel|checks|sandbox|"
                  r"tracing|runner|worker|wire|isolation|run_check|EXERCISES|all_exercises|"
                  r"get_exercise|Check\b|CheckResult)", "refers to the grader's internals"),
    ("review", r"_reference|\b(?:setprofile|settrace|getprofile|gettrace|sys\.monitoring|"
               r"sys\.modules|_getframe|f_back|f_globals|__closure__|__code__|__globals__|"
               r"ctypes|gc\.get_)", "reaches for interpreter internals (tracing hooks, frames, "
               "code objects, loaded modules)"),
    ("review", r"\b(?:exec|eval|compile)\s*\(|__import__|importlib|runpy",
     "runs code from a string or imports by name"),
    ("review", r"\bopen\s*\(|read_text|read_bytes|nbformat|solutions|\.ipynb|__file__",
     "reads files"),
    ("review", r"\bos\.(?:kill|killpg|system|fork|exec|spawn|popen|getppid)|signal\.|"
               r"subprocess|multiprocessing|threading", "starts or signals processes"),
]


def static_findings(sources: Iterable[str]) -> Findings:
    """What the submitted cells' text shows (read in the grader, out of the learner's
    reach): references to the grader's internals (tampering), and what an answer has no
    need for (review)."""
    text = "\n".join(sources)
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())  # comments aside
    found = Findings()
    for kind, pattern, label in STATIC_PATTERNS:
        if re.search(pattern, code):
            found.add(kind, f"the submitted code {label}")
    return found
