"""The ``tessera`` command run inside the test process: ``broker.cli.main`` with the
environment, working directory, stdout and stderr a subprocess would have had, answered as a
``subprocess.CompletedProcess``.

Why: a fresh interpreter spends ~2 s importing the CLI (the admin API's models and routes,
SQLAlchemy) before a management command does ~0.3 s of work, and the suite makes hundreds of
such calls. The command's own code is the same either way (argument parsing, the admin
operation on the local deployment, rendering, exit codes); what the process boundary adds is
tested where it matters, with real subprocesses: ``serve``, signals and closed pipes, the
installed entry point, concurrent runs (``tests/broker/test_cli.py`` and the ``serve`` based
tests). Commands that start servers are always run in a subprocess (``SUBPROCESS_ONLY``).

One call at a time (a lock): the environment, the working directory and ``sys.stdout`` are
the process's own, so they are swapped for the call and restored after it. The command runs
in a thread of its own, since ``asyncio.run`` cannot run inside the test's event loop; the
calling thread waits for it, so nothing else of the test process runs meanwhile.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Mapping
from pathlib import Path

SUBPROCESS_ONLY = frozenset({"serve", "demo-resource"})
_lock = threading.Lock()


def wants_subprocess(args: tuple[str, ...]) -> bool:
    words = [a for a in args if not a.startswith("-")]
    return bool(words) and words[0] in SUBPROCESS_ONLY


def run(args: tuple[str, ...], env: Mapping[str, str], cwd: Path,
        timeout: float) -> subprocess.CompletedProcess[str]:
    from broker.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    code: list[int] = []

    def command() -> None:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code.append(main(list(args)))
            except SystemExit as exc:  # argparse: usage errors, --help, --version
                code.append(exc.code if isinstance(exc.code, int) else
                            (0 if exc.code is None else _say(exc.code)))
            except BaseException:  # what the interpreter would print, and its exit code
                traceback.print_exc()
                code.append(1)

    with _lock, _environment(env), _working_directory(cwd):
        worker = threading.Thread(target=command, name="tessera-cli", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            raise subprocess.TimeoutExpired(["tessera", *args], timeout)
    return subprocess.CompletedProcess(["tessera", *args], code[0], out.getvalue(),
                                       err.getvalue())


def _say(message: object) -> int:
    print(message, file=sys.stderr)
    return 1


@contextlib.contextmanager
def _environment(env: Mapping[str, str]):  # type: ignore[no-untyped-def]
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _working_directory(cwd: Path):  # type: ignore[no-untyped-def]
    saved = os.getcwd()
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved)
