"""Run one python falsifier in this (child) process and report its result through harness.channel.

    python -m harness.child MODULE:FUNCTION RESULT_FILE

The parent (harness.execute) owns the timeout and the process group; this side only classifies
what the falsifier did. The channel's key is read (and its pipe closed) before the falsifier is
imported; the verdict is signed, appended to RESULT_FILE once, and the process ends with
`os._exit` right after, so neither the falsifier writing RESULT_FILE itself nor an atexit hook can
forge a pass. Anything that stops us from reporting (os._exit, a signal, a hang) is classified by
the parent from the exit status instead.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import traceback
from typing import Any

from harness import channel, guard_coverage, imported_files, param_env, replay_child

MAX_TEXT = 8000

# The most characters of a falsified result's one-line reason (its counterexample keeps the whole message).
REASON_MAX = 4000


def _where(exc: BaseException) -> str:
    """`file:line in function` of the innermost frame, so a bare `assert` still says what failed."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    source = f": {last.line}" if last.line else ""
    return f"{last.filename}:{last.lineno} in {last.name}{source}"


def _message(exc: BaseException) -> str:
    text = str(exc)
    notes = getattr(exc, "__notes__", None) or []
    # hypothesis puts the failing call ("Falsifying example: f(x=...)", newer: "Failing test case:") in the notes (PEP 678).
    if notes:
        text = "\n".join([text, *map(str, notes)]) if text else "\n".join(map(str, notes))
    return text[:MAX_TEXT]


def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not hide the real problem
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 200 else text[:200] + "..."


def classify(target: str) -> dict[str, Any]:
    """Import and call `module:function`; the result dict the parent turns into a FalsifierResult."""
    module_name, _, func_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        func = replay_child.apply(module, getattr(module, func_name))
    except BaseException as exc:  # noqa: BLE001 - any import failure is the falsifier's error
        return {
            "outcome": "error",
            "reason": f"cannot import {target}: {type(exc).__name__}: {exc}",
            "counterexample": None,
        }
    try:
        # Contract parameters (harness.parameters) the function takes by name; all are in the environment too.
        returned = func(**param_env.keyword_arguments(func, os.environ))
        if returned is not None:
            # `return a == b` instead of `assert a == b`, a generator, or an un-awaited coroutine: the check
            # either never ran or its verdict would be thrown away, so this can never count as passed.
            if inspect.isgenerator(returned) or inspect.iscoroutine(returned):
                returned.close()  # no "never awaited" warning on top of the real problem
            return {
                "outcome": "error",
                "reason": f"{target} returned {_short_repr(returned)} instead of None; a falsifier must return None "
                "when the invariant holds and raise AssertionError when it does not: turn the returned check into an assert",
                "counterexample": None,
            }
    except AssertionError as exc:
        message = _message(exc)
        where = _where(exc)
        counterexample = message if message else f"assertion failed at {where}"
        first_line = (message.splitlines() or [""])[0] or f"assertion failed at {where}"
        # The reason is the first line, bounded so a runaway message cannot flood a terminal, but long enough to
        # hold a fix command whole (its paths included): a falsifier's fix must run as verify prints it.
        return {"outcome": "falsified", "reason": f"AssertionError: {first_line}"[:REASON_MAX], "counterexample": counterexample}
    except BaseException as exc:  # noqa: BLE001 - SystemExit/KeyboardInterrupt inside a falsifier are its errors too
        where = _where(exc)
        detail = _message(exc)
        return {
            "outcome": "error",
            "reason": f"{type(exc).__name__}: {detail} (at {where})"[:MAX_TEXT],
            "counterexample": None,
        }
    return {"outcome": "passed", "reason": "returned without an AssertionError", "counterexample": None}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m harness.child MODULE:FUNCTION RESULT_FILE", file=sys.stderr)
        return 2
    target, result_file = argv
    # Before anything of the repository is imported: afterwards the key is only in this local.
    key = channel.receive_key()
    if key is None:
        print(f"harness.child: no result channel key in ${channel.KEY_FD_ENV}; run falsifiers with harness verify", file=sys.stderr)
        return 2
    send = channel.send  # bound now: a falsifier replacing harness.channel.send cannot see the verdict
    # The falsifier is resolved against the repository root (our cwd), like `python -m pytest` does.
    sys.path.insert(0, os.getcwd())
    replay_child.prepare()  # hypothesis prints its reproduction blob (harness.replay_record keeps it)
    imports = imported_files.watch()  # --changed-since: the repository files this run imported
    # Vacuity: which guards ran, folded into the result before it is sent (harness.guard_coverage).
    guards = guard_coverage.from_env()
    if guards is not None:
        guards.start(after_import=target.partition(":")[0])
    result = classify(target)
    if guards is not None:
        result.update(guards.finish())
    result.update(imports.finish([imported_files.module_file(target.partition(":")[0])]))
    send(result_file, key, result, 0)
    return 0  # not reached: send ends the process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
