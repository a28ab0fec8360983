"""Keeping submissions apart: copies of the kit, clean interpreter paths, and cleaning up.

The grader reads the wmkit package into memory once, when it starts (`KitSnapshot`). For every
notebook it writes two fresh copies from memory into a temporary folder, and makes them
read-only:

- `grader/wmkit`: the code the notebook's grading process runs (checks and references);
- `kernel/wmkit`: the code the learner's kernel imports, without `grading/checks` (the
  references are not there to import).

A submission that writes to a copy (or to the installed package on disk) changes nothing for
the next one: the next copies come from memory. Python processes started here see the copy
first and nothing of the folder wmkit was installed from (a checkout's root, with its
`exercises/solutions/`), nor the working directory, nor `PYTHONPATH`.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import wmkit

PACKAGE = Path(wmkit.__file__).resolve().parent
JOB_MARK = "WMKIT_GRADING_JOB"
"""Environment variable carrying a job's token: every process of a job inherits it, so the
grader can find and stop what a job left running (a kernel whose parent was killed)."""


@dataclass(frozen=True)
class KitSnapshot:
    """Every file of the wmkit package (path relative to its parent -> bytes)."""

    files: dict[str, bytes]

    @classmethod
    def capture(cls, package: Path = PACKAGE) -> KitSnapshot:
        files = {}
        for path in sorted(package.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files[str(path.relative_to(package.parent))] = path.read_bytes()
        return cls(files)

    def write(self, folder: Path, without: tuple[str, ...] = ()) -> Path:
        """Write the package under `folder` (skipping paths that start with one of `without`),
        make it read-only, and return `folder` (the entry for sys.path)."""
        for name, data in self.files.items():
            if name.startswith(without):
                continue
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        make_read_only(folder)
        return folder


def make_read_only(folder: Path) -> None:
    """Files r--, folders r-x, for everyone (root can still write: see INSTRUCTORS.md)."""
    for path in sorted(folder.rglob("*"), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)


def remove_tree(folder: Path) -> None:
    """Remove a folder made read-only (permissions restored first), ignoring what is gone."""
    if not folder.exists():
        return
    for root, dirs, _ in os.walk(folder):
        for name in dirs:
            try:
                os.chmod(os.path.join(root, name), stat.S_IRWXU)
            except OSError:
                pass
    try:
        os.chmod(folder, stat.S_IRWXU)
    except OSError:
        pass
    shutil.rmtree(folder, ignore_errors=True)


def installed_from() -> Path | None:
    """The folder wmkit was installed from when it is not an installed package's folder (a
    checkout, for an editable install or PYTHONPATH): kept off every path we start."""
    parent = PACKAGE.parent
    prefixes = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    if any(parent == p or p in parent.parents for p in prefixes) or \
            parent.name in ("site-packages", "dist-packages"):
        return None
    return parent


def clean_sys_path(kit: Path) -> list[str]:
    """This interpreter's sys.path for a child: `kit` first; not our working directory, no
    other folder holding a wmkit package, and nothing inside the folder wmkit was installed
    from (the interpreter's own folders excepted)."""
    source = installed_from()
    prefixes = [Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)]
    cwd = Path.cwd().resolve()
    kept = [str(kit)]
    for entry in sys.path:
        if not entry or not os.path.isabs(entry):
            continue
        path = Path(entry).resolve()
        inside_python = any(path == p or p in path.parents for p in prefixes)
        if not inside_python and (path == cwd or (path / "wmkit").is_dir() or
                                  source is not None and (path == source or
                                                          source in path.parents)):
            continue  # our folder, another copy of the kit (the grader's), the checkout
        if str(path) not in kept:
            kept.append(str(path))
    return kept


def python_argv(kit: Path, code: str) -> list[str]:
    """argv running `code` with `kit` first on a clean sys.path (see `clean_sys_path`), with
    no editable-install finder (it would map `wmkit` back to the checkout) and
    PYTHONPATH ignored (-E)."""
    boot = (f"import sys; sys.path[:] = {clean_sys_path(kit)!r}; "
            "sys.meta_path[:] = [f for f in sys.meta_path "
            "if not str(getattr(f, '__module__', '')).startswith('__editable__')]; "
            "sys.path_hooks[:] = [h for h in sys.path_hooks "
            "if not str(getattr(h, '__module__', '')).startswith('__editable__')]; "
            "sys.path_importer_cache.clear(); " + code)
    return [sys.executable, "-E", "-c", boot]


def child_env(token: str) -> dict[str, str]:
    """The environment of a job's processes: ours, minus PYTHONPATH, plus the job's mark."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env.update({JOB_MARK: token, "PYTHONSAFEPATH": "1", "PYTHONDONTWRITEBYTECODE": "1",
                "MPLBACKEND": "Agg", "SDL_VIDEODRIVER": "dummy", "OMP_NUM_THREADS": "1",
                "PYDEVD_DISABLE_FILE_VALIDATION": "1"})
    return env


def kill_marked(token: str) -> int:
    """SIGKILL every process carrying this job's mark (Linux /proc); return how many."""
    proc = Path("/proc")
    if not proc.is_dir():
        return 0
    mark = f"{JOB_MARK}={token}".encode()
    killed = 0
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if mark in (entry / "environ").read_bytes().split(b"\0"):
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
        except OSError:  # gone, or not ours
            continue
    return killed
