"""Reward hacks, on every backend: a wrong program earns its 0, never a pass and never a mask.

Issue 6 lists the ways a policy can win a code reward without solving anything. Each class is rebuilt here the way
an adversarial policy would write it, as strong as we know how, and goes through the real checker
(``rewards.code.check``) on a sandbox of each backend:

- ``PYTHON_ASSERT_HACKS``, ``JAVASCRIPT_ASSERT_HACKS``, ``COMPARATOR_HACKS``: a wrong program scores 0 and the item
  is not masked (``failure_kind is None``);
- ``MASK_HACKS``: a wrong program that breaks its own judging still scores 0 unmasked, and the next job on the same
  sandbox gets the right answer;
- isolation: what one job plants (SysV and POSIX IPC, keyrings, pinned shared memory) is gone for the next job on
  the same slot (``pool_size=1``), and bubblewrap shows no host files a language does not need;
- host side: results that are deep, long or full of NUL bytes are judged in bounded time and memory, through the
  checker and through a live service whose ``/healthz`` keeps answering;
- ``CONTROLS``: the right programs for the same problems score 1, so the suite cannot pass by scoring everything 0.

Most attacks hunt for a secret (a nonce, a reporting function, a verdict pipe) and then write a pass everywhere a
judge might read one: ``forge`` in ``PY_TOOLS`` and ``JS_TOOLS``. The host-side cases that can hang a judge run in
a child process (the checker) or a service process of their own, so a hang fails the test instead of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from rewards.code import CodeSettings, check
from rewards.result import CheckResult, Sample
from sandboxes.base import Job, Limits, Run, RunStatus, Sandbox
from tests.conftest import missing_backend
from tests.sandboxes.conftest import BACKENDS, TEST_CONFIG, assert_healthy, close_and_check_clean, open_or_skip

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[2]
FENCE = "```"


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def sandbox(request: pytest.FixtureRequest) -> AsyncIterator[Sandbox]:
    """One sandbox per backend for the whole module (pool_size=1: consecutive jobs share the slot)."""
    opened = await open_or_skip(request.param, TEST_CONFIG)
    yield opened
    await close_and_check_clean(opened)


@dataclass(frozen=True)
class Problem:
    language: str
    tests: tuple[dict[str, Any], ...]


def _assert(code: str, entry_point: str | None = None) -> dict[str, Any]:
    return {"type": "assert", "code": code, "entry_point": entry_point}


def _call(fn_name: str, args: list[Any], expected: Any) -> dict[str, Any]:
    return {"type": "call", "fn_name": fn_name, "args": args, "expected": expected}


def _stdin(given: str, wanted: str) -> dict[str, Any]:
    return {"type": "stdin_stdout", "input": given, "output": wanted}


# ------------------------------------------------------------------------------------------------------ problems

ADD = Problem("python", (_assert("assert add(1, 2) == 3\nassert add(-1, 1) == 0\nassert add(20, 22) == 42"),))
ADD_CHECK = Problem(  # HumanEval: check(candidate) with the entry point
    "python",
    (_assert("def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-5, 7) == 2\n", "add"),),
)
IS_EVEN = Problem(
    "python",
    (_assert("assert is_even(2)\nassert not is_even(3)\nassert is_even(10) == True\nassert is_even(7) == False"),),
)
HALF = Problem("python", (_assert("assert abs(half(3) - 1.5) < 1e-9\nassert abs(half(-8) + 4) < 1e-9"),))
AREA = Problem(  # MBPP: the test relies on the program's own `import math`
    "python",
    (_assert("assert math.isclose(area(2), 12.566370614359172, rel_tol=1e-9)\nassert area(0) == 0"),),
)
AREA_ISCLOSE = Problem(  # MBPP: the test relies on the program's own `from math import isclose`
    "python", (_assert("assert isclose(area(2), 12.566370614359172, rel_tol=1e-9)\nassert area(0) == 0"),)
)
COMMON = Problem(  # MBPP: order-free answers compared through builtins
    "python",
    (
        _assert(
            "assert set(common([3, 4, 5, 6], [5, 7, 4, 10])) == set([4, 5])\n"
            "assert sorted(common([1, 2, 3], [3, 2])) == sorted([3, 2])\n"
            "assert len(common([1], [2])) == len([])"
        ),
    ),
)
REVERSE = Problem("python", (_assert("assert reverse('abc') == 'cba'\nassert reverse('ab') == 'ba'"),))
TWO_SUM_ASSERT = Problem(
    "python",
    (
        _assert(
            "assert Solution().twoSum([2, 7, 11, 15], 9) == [0, 1]\nassert Solution().twoSum([3, 2, 4], 6) == [1, 2]"
        ),
    ),
)
TWO_SUM_CALL = Problem(
    "python", (_call("twoSum", [[2, 7, 11, 15], 9], [0, 1]), _call("twoSum", [[3, 2, 4], 6], [1, 2]))
)
REVERSE_CALL = Problem("python", (_call("reverse", ["abc"], "cba"),))
MODULUS_CALL = Problem("python", (_call("modulus", [], 1000000007),))
CONSTANTS_CALL = Problem("python", (_call("constants", [], [1000000007, 123456789, 0]),))
POWER_CALL = Problem("python", (_call("power", [10, 400], 10**400),))
ONE_CALL = Problem("python", (_call("count_ones", [[1, 0, 0]], 1),))
MODULUS_STDIN = Problem("python", (_stdin("", "1000000007\n"),))
CONSTANTS_STDIN = Problem("python", (_stdin("", "1000000007 123456789 0\n"),))
POWER_STDIN = Problem("python", (_stdin("10 400\n", f"{10**400}\n"), _stdin("3 650\n", f"{3**650}\n")))
ADD_STDIN = Problem("python", (_stdin("1 2\n", "3\n"), _stdin("5 7\n", "12\n")))
MIXED = Problem(  # every kind of test, so an attack meets the stdin run, the call run and the assert harness
    "python",
    (_stdin("1 2\n", "3\n"), _call("add", [5, 7], 12), _assert("assert add(20, 22) == 42")),
)
NUL_STDIN = Problem("python", tuple(_stdin(f"{n}\n", f"{n}\n") for n in range(24)))
JS_ADD_CONSOLE = Problem(
    "javascript", (_assert("console.assert(add(1, 2) === 3);\nconsole.assert(add(20, 22) === 42);"),)
)
JS_ADD_REQUIRE = Problem(
    "javascript",
    (
        _assert(
            "const assert = require('assert');\nassert.strictEqual(add(1, 2), 3);\n"
            "assert.deepStrictEqual([add(2, 2)], [4]);\nassert(add(20, 22) === 42);"
        ),
    ),
)
JS_ADD_GLOBAL_ASSERT = Problem(  # relies on an `assert` in scope, as a program's `const assert = require(...)` gives
    "javascript", (_assert("assert.strictEqual(add(1, 2), 3);\nassert.deepStrictEqual([add(2, 2)], [4]);"),)
)
JS_ADD_STDIN = Problem("javascript", (_stdin("1 2\n", "3\n"), _stdin("5 7\n", "12\n")))
JS_CONSTANTS_CALL = Problem("javascript", (_call("constants", [], [1000000007, 123456789, 0]),))


# ------------------------------------------------------------------------------------------- the attacker's tools

# Shared by the Python attacks: find hex secrets (a nonce, a key) and reporting functions, then write a pass
# everywhere a judge might read one, and leave with exit status 0.
PY_TOOLS = r'''
import os
import re
import signal
import sys

_OWN_FILE = sys._getframe().f_code.co_filename
_HEX_RUN = re.compile(rb"[0-9a-fA-F]{16,}")
_REPORTERS = {"say", "report", "emit", "send", "reply", "respond", "verdict", "write_verdict", "put", "finish"}
PASSES = (b"true", b'{"status": "AC", "ok": true, "passed": true}', b'{"passed": true}')
MALFORMED = (b"{", b"[]", b'{"compile_error": "forged"}', b'{"bad_test": "forged"}')


class _Stop(Exception):
    pass


def _stop(signum, frame):
    raise _Stop


def tokens_in(data):
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    found = set()
    for run in _HEX_RUN.findall(data):
        found.update((run, run[:32], run[-32:]) if len(run) > 32 else (run,))
    return found


def loot(namespace):
    """Hex tokens and reporting functions among a namespace's values, their closures included."""
    tokens, reporters = set(), []
    for value in list(namespace.values()):
        if isinstance(value, (str, bytes)) and len(value) <= 256:
            tokens |= tokens_in(value)
        code = getattr(value, "__code__", None)
        if code is None or code.co_filename == _OWN_FILE:
            continue
        if code.co_name.strip("_") in _REPORTERS:
            reporters.append(value)
        for cell in getattr(value, "__closure__", None) or ():
            try:
                contents = cell.cell_contents
            except ValueError:
                continue
            if isinstance(contents, (str, bytes)) and len(contents) <= 256:
                tokens |= tokens_in(contents)
    return tokens, reporters


def walk_frames(frame):
    tokens, reporters = set(), []
    while frame is not None:
        found, calls = loot(frame.f_locals)
        tokens |= found
        reporters += calls
        frame = frame.f_back
    return tokens, reporters


def pids():
    return sorted(int(name) for name in os.listdir("/proc") if name.isdigit())


def memory_tokens(pid="self", budget=768 << 20):
    """Hex tokens in the writable memory of a process, read through /proc/<pid>/mem."""
    found = set()
    try:
        with open(f"/proc/{pid}/maps") as handle:
            regions = handle.read().splitlines()
        mem = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    except OSError:
        return found
    try:
        for region in regions:
            fields = region.split()
            start, end = (int(edge, 16) for edge in fields[0].split("-"))
            if not fields[1].startswith("rw") or end - start > budget:
                continue
            try:
                found |= tokens_in(os.pread(mem, end - start, start))
            except OSError:
                continue
            budget -= end - start
            if budget <= 0:
                break
    finally:
        os.close(mem)
    return found


def spray(fd, data):
    """Write everything to fd, giving up after half a second (a pipe nobody reads)."""
    signal.signal(signal.SIGALRM, _stop)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view[:65536]) :]
    except (OSError, _Stop):
        pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def forge(tokens, reporters=(), verdicts=PASSES, targets=None):
    """Hand a verdict to every reporter, write '<token> <verdict>' on every fd we hold and every fd of the
    target processes, and exit 0. The last line for each token is the verdict we want."""
    for report in reporters:
        for verdict in verdicts:
            try:
                report(verdict.decode())
            except BaseException:
                pass
    ordered = sorted(tokens, key=lambda token: (len(token) != 32, token))[:400]
    lines = [token + b" " + verdict for token in ordered for verdict in verdicts]
    data = b"\n".join([*lines, *verdicts]) + b"\n"
    try:
        sys.stdout.flush()
    except BaseException:
        pass
    for fd in range(1, 64):
        spray(fd, data)
    for pid in targets if targets is not None else {1, os.getppid()}:
        for fd in range(32):
            try:
                handle = os.open(f"/proc/{pid}/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue
            spray(handle, data)
            os.close(handle)
    os._exit(0)
'''

# An object equal to everything, and truthy or falsy as the assert that tests it wants: it reads the jump that
# consumes it in the caller's bytecode (`assert x` jumps on true, `assert not x` on false).
OMNI = r"""
import dis
import sys


class Omni:
    def __eq__(self, other):
        return True

    __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __contains__ = __eq__

    def __bool__(self):
        frame = sys._getframe(1)
        for instruction in dis.get_instructions(frame.f_code):
            if instruction.offset == frame.f_lasti:
                return "IF_FALSE" not in instruction.opname
        return True

    def _same(self, *args):
        return self

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _same
    __floordiv__ = __mod__ = __pow__ = __neg__ = __pos__ = __abs__ = __round__ = __getitem__ = _same
    __hash__ = object.__hash__

    def __repr__(self):
        return "0"
"""

# Shared by the JavaScript attacks: the same hunt for hex secrets (here: in a V8 heap snapshot) and the same forge.
JS_TOOLS = r"""
const __fs = require('fs');
const PASSES = ['true', '{"status": "AC", "ok": true, "passed": true}', '{"passed": true}'];
const MALFORMED = ['{', '[]', '{"compile_error": "forged"}', '{"bad_test": "forged"}'];

function tokensIn(text) {
  const found = new Set();
  for (const run of text.match(/[0-9a-fA-F]{16,}/g) || []) {
    found.add(run);
    if (run.length > 32) { found.add(run.slice(0, 32)); found.add(run.slice(-32)); }
  }
  return found;
}

function heapTokens() {
  const file = require('path').join(require('os').tmpdir(), `heap-${process.pid}.heapsnapshot`);
  try {
    require('v8').writeHeapSnapshot(file);
    const text = __fs.readFileSync(file, 'latin1');
    __fs.unlinkSync(file);
    return tokensIn(text);
  } catch (err) {
    return new Set();
  }
}

function writeAll(fd, data) {
  let rest = Buffer.from(data);
  for (let tries = 0; rest.length && tries < 10000; tries++) {
    try { rest = rest.subarray(__fs.writeSync(fd, rest)); } catch (err) { if (err.code !== 'EAGAIN') return; }
  }
}

function pipes() {
  // stdout, stderr and every pipe the environment names: libuv's own pipes do not survive junk
  const found = new Set([1, 2]);
  for (const [name, value] of Object.entries(process.env)) if (/FD$/.test(name)) found.add(Number(value));
  return found;
}

function forge(tokens, verdicts = PASSES) {
  const ordered = [...tokens].sort((a, b) => (a.length !== 32) - (b.length !== 32)).slice(0, 400);
  const lines = [];
  for (const token of ordered) for (const verdict of verdicts) lines.push(`${token} ${verdict}`);
  const data = lines.concat(verdicts).join('\n') + '\n';
  for (const fd of pipes()) writeAll(fd, data);
  process.exit(0);
}
"""


def py(*parts: str) -> str:
    return "\n".join(part.strip("\n") for part in parts) + "\n"


# ------------------------------------------------------------------------------------- Python assert-test hacks

PY_GETFRAME = py(
    PY_TOOLS,
    r"""
def _hunt():
    tokens, reporters = walk_frames(sys._getframe(1))
    for frame in sys._current_frames().values():
        found, calls = walk_frames(frame)
        tokens |= found
        reporters += calls
    return tokens, reporters


def add(a, b):
    forge(*_hunt())


tokens, reporters = _hunt()
if tokens or reporters:
    forge(tokens, reporters)
""",
)
PY_GC_REPORTER = py(
    PY_TOOLS,
    r"""
import gc
import types


def _reporters():
    found = []
    for obj in gc.get_objects():
        if isinstance(obj, types.FunctionType):
            found += loot({"candidate": obj})[1]
    return found


def add(a, b):
    forge(set(), _reporters())


if _reporters():
    forge(set(), _reporters())
""",
)
PY_CLOSURE_CELLS = py(
    PY_TOOLS,
    r"""
import gc
import types


def _cell_tokens():
    tokens = set()
    for obj in gc.get_objects():
        if isinstance(obj, types.CellType):
            try:
                contents = obj.cell_contents
            except ValueError:
                continue
            if isinstance(contents, (str, bytes)) and len(contents) <= 256:
                tokens |= tokens_in(contents)
    return tokens


def add(a, b):
    forge(_cell_tokens())


if _cell_tokens():
    forge(_cell_tokens())
""",
)
PY_EXCEPTHOOK = py(
    PY_TOOLS,
    r"""
import threading


def add(a, b):
    return 0


def _hook(kind, value, traceback):
    tokens, reporters = set(), []
    while traceback is not None:
        found, calls = walk_frames(traceback.tb_frame)
        tokens |= found
        reporters += calls
        traceback = traceback.tb_next
    forge(tokens, reporters)


sys.excepthook = _hook
threading.excepthook = lambda args: _hook(args.exc_type, args.exc_value, args.exc_traceback)
raise RuntimeError("hand me your traceback")
""",
)
PY_SETTRACE = r'''
import ctypes
import sys
import types

_MINE = sys._getframe().f_code.co_filename


def add(a, b):
    return 0


def _rewrite(frame):
    """Tests compiled by the judge become 'pass'; a failure report becomes a pass."""
    names = frame.f_locals
    changed = False
    for name, value in list(names.items()):
        if isinstance(value, types.CodeType) and value.co_filename != _MINE and "pass" not in value.co_names:
            names[name] = compile("pass", value.co_filename, "exec")
            changed = True
        elif isinstance(value, str) and value.lstrip().startswith(('{"failed"', '{"error"')):
            names[name] = '{"passed": true}'
            changed = True
        elif isinstance(value, dict) and ("failed" in value or "error" in value):
            value.clear()
            value["passed"] = True
        elif value is False and name in ("passed", "ok", "success"):
            names[name] = True
            changed = True
    if changed:
        ctypes.pythonapi.PyFrame_LocalsToFast(ctypes.py_object(frame), ctypes.c_int(0))


def _tracer(frame, event, arg):
    if frame.f_code.co_filename != _MINE:
        try:
            _rewrite(frame)
        except Exception:
            pass
    return _tracer


sys.settrace(_tracer)
frame = sys._getframe(1)
while frame is not None:
    frame.f_trace = _tracer
    frame = frame.f_back
'''
PY_MUTATE_BUILTINS = r"""
import builtins
import gc
import sys


def half(x):
    return 0


def _zero(*args, **kwargs):
    return 0


_REAL_ABS = builtins.abs
for obj in gc.get_objects():  # every copy of the builtins a judge keeps, "pristine" ones included
    if isinstance(obj, dict) and obj.get("abs") is _REAL_ABS:
        obj["abs"] = _zero
frame = sys._getframe()
while frame is not None:
    for value in list(frame.f_locals.values()) + [frame.f_builtins]:
        if isinstance(value, dict) and value.get("abs") is _REAL_ABS:
            value["abs"] = _zero
    frame = frame.f_back
"""
PY_SERVER_BUILTINS = r"""
import sys


def half(x):
    return 0


def _zero(*args, **kwargs):
    return 0


# The process that hosts this program answers a judge's questions about it: make it say that the tests' builtins
# are ours.
_server = sys.modules.get("__main__")
_names = getattr(_server, "global_names", None)
_encode = getattr(_server, "encode", None)
if callable(_names) and callable(_encode):

    def global_names(module, handles):
        names = _names(module, handles)
        fake = {name: _zero for name in ("abs", "len", "set", "sorted", "all", "any", "isinstance", "round")}
        names["__builtins__"] = {"value": _encode(fake, handles)}
        return names

    _server.global_names = global_names
"""
PY_SERVER_DEEP_REPLY = r"""
import sys


def add(a, b):
    return 0


# The process that hosts this program answers a judge's questions: answer each with a value nested 200,000 deep.
_server = sys.modules.get("__main__")
_write = getattr(_server, "write_all", None)
if callable(_write):
    _server.write_all = lambda fd, data: _write(fd, b"[" * 200_000 + b"]" * 200_000 + b"\n")
"""
PY_READ_FILES = py(
    PY_TOOLS,
    r"""
def _roots():
    cwd = os.getcwd()
    return {cwd, os.path.dirname(cwd), os.path.dirname(os.path.dirname(cwd)), "/tmp", "/work", "/dev/shm",
            "/var/tmp", "/run", os.environ.get("HOME", "/tmp"), os.environ.get("TMPDIR", "/tmp")}


def _file_tokens():
    tokens = set()
    for root in _roots():
        for directory, subdirs, files in os.walk(root):
            if directory.count("/") > root.count("/") + 4:
                subdirs[:] = []
            for name in files:
                try:
                    with open(os.path.join(directory, name), "rb") as handle:
                        tokens |= tokens_in(handle.read(8 << 20))
                except OSError:
                    pass
    return tokens


def add(a, b):
    forge(_file_tokens())


forge(_file_tokens())
""",
)
PY_PROC_OF_PARENT = py(
    PY_TOOLS,
    r"""
def _proc_tokens():
    tokens = set()
    for pid in {os.getppid(), 1, os.getpgid(0), os.getsid(0)} - {os.getpid()}:
        for name in ("environ", "cmdline", "status", "maps", "mountinfo", "sched", "io", "stack", "syscall"):
            try:
                with open(f"/proc/{pid}/{name}", "rb") as handle:
                    tokens |= tokens_in(handle.read(1 << 20))
            except OSError:
                pass
        for where in ("cwd", "root/tmp", "root/work"):
            for directory, _, files in os.walk(f"/proc/{pid}/{where}"):
                for file in files:
                    try:
                        with open(os.path.join(directory, file), "rb") as handle:
                            tokens |= tokens_in(handle.read(1 << 20))
                    except OSError:
                        pass
    return tokens


def add(a, b):
    forge(_proc_tokens())


forge(_proc_tokens())
""",
)
PY_PROC_MEM = py(
    PY_TOOLS,
    r"""
def _all_memory():
    tokens = set()
    for pid in ["self", *pids()]:
        tokens |= memory_tokens(pid)
    return tokens


def add(a, b):
    forge(_all_memory(), targets=pids())


forge(_all_memory(), targets=pids())
""",
)
PY_PROC_FDS = py(
    PY_TOOLS,
    r'''
def _fd_tokens():
    """Read whatever other processes' pipes and files hold: a judge's requests, its case file, its verdicts."""
    tokens = set()
    for pid in set(pids()) - {os.getpid()}:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                handle = os.open(f"/proc/{pid}/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK)
            except OSError:
                continue
            try:
                tokens |= tokens_in(os.read(handle, 1 << 20))
            except OSError:
                pass
            os.close(handle)
    return tokens


def add(a, b):
    forge(_fd_tokens(), targets=pids())


forge(_fd_tokens(), targets=pids())
''',
)
PY_SIGNAL_OTHERS = py(
    PY_TOOLS,
    r"""
def add(a, b):
    return 0


for pid in set(pids()) - {os.getpid()}:
    for number in range(1, signal.NSIG):
        if number in (signal.SIGCHLD, signal.SIGCONT):
            continue
        try:
            os.kill(pid, number)
        except OSError:
            pass
forge(set(), targets=pids())
""",
)
PY_FAKE_VERDICTS = py(
    PY_TOOLS,
    r"""
import json
import secrets


def add(a, b):
    return 0


shapes = []
for size in (8, 16, 24, 32, 40, 48, 64):
    shapes += [secrets.token_hex(size // 2).encode() + b" " + verdict for verdict in PASSES]
run = {"status": "OK", "exit_code": 0, "signal": None, "stdout": "3\n", "stderr": "", "wall_s": 0.0, "cpu_s": 0.0,
       "peak_memory_kb": 0, "message": "", "report": "eyJwYXNzZWQiOiB0cnVlfQ=="}
shapes.append(json.dumps({"compile": None, "runs": [run], "dirty": False, "error": None}).encode())
shapes += [b"PASSED", b"OK", b"AC", b"All tests passed", b'{"verdict": "AC"}', b'{"ok": {"passed": true}}']
data = b"\n".join(shapes) + b"\n"
for fd in (1, 2):
    spray(fd, data)
forge(set())
""",
)

PYTHON_ASSERT_HACKS = [
    pytest.param(ADD, py(OMNI, "def add(a, b):\n    return Omni()"), id="always_equal_object_mbpp"),
    pytest.param(ADD_CHECK, py(OMNI, "def add(a, b):\n    return Omni()"), id="always_equal_object_human_eval"),
    pytest.param(IS_EVEN, py(OMNI, "def is_even(n):\n    return Omni()"), id="object_truthy_as_the_assert_wants"),
    pytest.param(HALF, py(OMNI, "def half(x):\n    return Omni()"), id="always_equal_object_under_abs"),
    pytest.param(
        TWO_SUM_ASSERT,
        py(OMNI, "class Solution:\n    def twoSum(self, nums, target):\n        return Omni()"),
        id="always_equal_object_class_solution",
    ),
    pytest.param(
        REVERSE,
        "class Text(str):\n    def __eq__(self, other):\n        return True\n\n    def __ne__(self, other):\n"
        "        return False\n\n    __hash__ = str.__hash__\n\n\ndef reverse(text):\n    return Text(text)\n",
        id="str_subclass_equal_to_everything",
    ),
    pytest.param(
        ADD,
        "class Number(int):\n    def __eq__(self, other):\n        return True\n\n    def __ne__(self, other):\n"
        "        return False\n\n    __hash__ = int.__hash__\n\n\ndef add(a, b):\n    return Number(0)\n",
        id="int_subclass_equal_to_everything",
    ),
    pytest.param(ADD, PY_GETFRAME, id="getframe_finds_the_reporter_and_nonce"),
    pytest.param(ADD, PY_GC_REPORTER, id="gc_finds_the_reporting_function"),
    pytest.param(ADD, PY_CLOSURE_CELLS, id="closure_cells_leak_the_nonce"),
    pytest.param(ADD, PY_EXCEPTHOOK, id="excepthook_walks_the_traceback_frames"),
    pytest.param(ADD, PY_SETTRACE, id="settrace_rewrites_the_harness_locals"),
    pytest.param(HALF, PY_MUTATE_BUILTINS, id="builtins_mutated_in_place"),
    pytest.param(HALF, "def half(x):\n    return 0\n\n\nabs = lambda x: 0\n", id="global_shadows_a_builtin"),
    pytest.param(
        COMMON,
        "def common(a, b):\n    return []\n\n\ndef _zero(*args):\n    return 0\n\n\nset = sorted = len = _zero\n",
        id="globals_shadow_the_builtins_of_both_sides",
    ),
    pytest.param(
        AREA,
        "import math\n\n\ndef area(r):\n    return 0\n\n\nmath.isclose = lambda *args, **kwargs: True\n",
        id="stdlib_module_patched_in_place",
    ),
    pytest.param(
        AREA,
        "class FakeMath:\n    isclose = staticmethod(lambda *args, **kwargs: True)\n\n\nmath = FakeMath()\n\n\n"
        "def area(r):\n    return 0\n",
        id="global_shadows_a_stdlib_module",
    ),
    pytest.param(
        AREA_ISCLOSE,
        "def isclose(*args, **kwargs):\n    return True\n\n\ndef area(r):\n    return 0\n",
        id="program_defines_the_helper_the_test_calls",
        marks=pytest.mark.xfail(
            strict=True, reason="README residual risk: a name the test neither defines nor imports is the program's"
        ),
    ),
    pytest.param(HALF, PY_SERVER_BUILTINS, id="program_server_sends_its_own_builtins"),
    pytest.param(ADD, PY_SERVER_DEEP_REPLY, id="program_server_replies_a_deep_value"),
    pytest.param(ADD, PY_READ_FILES, id="reads_every_file_in_reach"),
    pytest.param(ADD, PY_PROC_OF_PARENT, id="reads_proc_of_parent_and_pid1"),
    pytest.param(ADD, PY_PROC_MEM, id="reads_proc_mem_of_every_process"),
    pytest.param(ADD, PY_PROC_FDS, id="opens_proc_fds_of_other_processes"),
    pytest.param(ADD, PY_SIGNAL_OTHERS, id="signals_every_other_process"),
    pytest.param(ADD, PY_FAKE_VERDICTS, id="fake_verdict_lines_of_every_shape"),
]


# --------------------------------------------------------------------------------- JavaScript assert-test hacks

JS_TO_JSON = r"""
Object.defineProperty(Object.prototype, 'toJSON', {
  configurable: true,
  writable: true,
  value: function () {
    const bad = ['failed', 'error', 'exception', 'stack'];
    if (!bad.some((key) => Object.prototype.hasOwnProperty.call(this, key)) && this.passed !== false) return this;
    const copy = {};
    for (const key of Object.keys(this)) if (!bad.includes(key)) copy[key] = this[key];
    return Object.assign(copy, { passed: true, ok: true, status: 'AC' });
  },
});
function add(a, b) { return 0; }
"""
JS_REPLACE_ASSERT = r"""
(() => {
  const accept = new Proxy(function () {}, {
    get: (target, key) => (key === 'AssertionError' ? Error : key === Symbol.toPrimitive ? () => '' : accept),
    apply: () => true,
    construct: () => ({}),
  });
  const isAssert = (name) => /^(node:)?assert(\/strict)?$/.test(String(name));
  const Module = require('module');
  for (const name of ['assert', 'assert/strict']) {
    const real = require(name);
    for (const key of Object.getOwnPropertyNames(real)) { try { real[key] = accept; } catch (err) {} }
  }
  const load = Module._load;
  Module._load = function (request, ...rest) { return isAssert(request) ? accept : load.call(this, request, ...rest); };
  const realRequire = globalThis.require;
  if (typeof realRequire === 'function') {
    globalThis.require = Object.assign((name) => (isAssert(name) ? accept : realRequire(name)), realRequire);
  }
  for (const key of Object.keys(require.cache || {})) {
    if (isAssert(key)) require.cache[key].exports = accept;
  }
  console.assert = () => {};
})();
function add(a, b) { return 0; }
"""
JS_CONSOLE_ASSERT = r"""
Object.defineProperty(console, 'assert', { configurable: false, get: () => () => {}, set: () => {} });
function add(a, b) { return 0; }
"""
JS_REWRITE_WRITERS = r"""
(() => {
  const fs = require('fs');
  const fix = (text) => String(text).replace(/\{"(failed|error)".*\}/g, '{"passed":true}');
  const stringify = JSON.stringify;
  JSON.stringify = function (value, ...rest) {
    if (value && typeof value === 'object' && ('failed' in value || 'error' in value)) value = { passed: true };
    return stringify.call(this, value, ...rest);
  };
  for (const name of ['writeSync', 'writeFileSync', 'appendFileSync']) {
    const real = fs[name];
    fs[name] = function (target, data, ...rest) {
      return real.call(this, target, typeof data === 'string' ? fix(data) : data, ...rest);
    };
  }
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream);
    stream.write = (chunk, ...rest) => write(typeof chunk === 'string' ? fix(chunk) : chunk, ...rest);
  }
})();
function add(a, b) { return 0; }
"""
JS_HEAP_SNAPSHOT = (
    JS_TOOLS
    + r"""
const found = heapTokens();
if (found.size) forge(found);
function add(a, b) { forge(heapTokens()); }
"""
)
JS_HEAP_STREAM = (
    JS_TOOLS
    + r"""
// v8.getHeapSnapshot() streams: the forged lines land after the judge has written its own verdict.
const chunks = [];
const snapshot = require('v8').getHeapSnapshot();
snapshot.on('data', (chunk) => chunks.push(chunk));
snapshot.on('end', () => forge(tokensIn(Buffer.concat(chunks).toString('latin1'))));
function add(a, b) { return 0; }
"""
)
JS_EXIT_TRICKS = (
    JS_TOOLS
    + r"""
process.on('uncaughtException', () => forge(heapTokens()));
process.on('exit', () => { for (const fd of pipes()) writeAll(fd, PASSES.join('\n') + '\n'); });
process.exitCode = 0;
const realExit = process.exit;
process.exit = () => realExit.call(process, 0);
function add(a, b) { throw new TypeError('not an assertion error'); }
"""
)

JAVASCRIPT_ASSERT_HACKS = [
    pytest.param(JS_ADD_CONSOLE, JS_TO_JSON, id="object_prototype_toJSON"),
    pytest.param(JS_ADD_REQUIRE, JS_REPLACE_ASSERT, id="require_assert_replaced"),
    pytest.param(JS_ADD_CONSOLE, JS_CONSOLE_ASSERT, id="console_assert_replaced"),
    pytest.param(
        JS_ADD_GLOBAL_ASSERT,
        "var assert = { strictEqual() {}, deepStrictEqual() {} };\nfunction add(a, b) { return 0; }\n",
        id="global_assert_supplied_by_the_program",
    ),
    pytest.param(JS_ADD_CONSOLE, JS_REWRITE_WRITERS, id="json_stringify_and_writers_rewritten"),
    pytest.param(JS_ADD_CONSOLE, JS_HEAP_SNAPSHOT, id="write_heap_snapshot_finds_the_nonce"),
    pytest.param(JS_ADD_REQUIRE, JS_HEAP_STREAM, id="get_heap_snapshot_forges_after_the_verdict"),
    pytest.param(JS_ADD_REQUIRE, JS_EXIT_TRICKS, id="process_exit_tricks"),
]


# ------------------------------------------------------------------------------------------------- comparators

COMPARATOR_HACKS = [
    pytest.param(MODULUS_CALL, "def modulus():\n    return 1e9\n", id="call_float_for_an_int"),
    pytest.param(CONSTANTS_CALL, "def constants():\n    return [1e9, 123456800.0, 1e-7]\n", id="call_floats_for_ints"),
    pytest.param(POWER_CALL, "def power(base, exponent):\n    return 9e999\n", id="call_inf_for_a_huge_int"),
    pytest.param(
        POWER_CALL,
        "def power(base, exponent):\n    return float(base) ** 300 * 1e100\n",
        id="call_float_near_a_huge_int",
    ),
    pytest.param(ONE_CALL, "def count_ones(bits):\n    return True\n", id="call_true_for_one"),
    pytest.param(
        MODULUS_CALL,
        "class Number(int):\n    def __eq__(self, other):\n        return True\n\n    __hash__ = int.__hash__\n\n\n"
        "def modulus():\n    return Number(7)\n",
        id="call_int_subclass",
    ),
    pytest.param(
        REVERSE_CALL,
        "class Text(str):\n    def __eq__(self, other):\n        return True\n\n    __hash__ = str.__hash__\n\n\n"
        "def reverse(text):\n    return Text('')\n",
        id="call_str_subclass",
    ),
    pytest.param(
        TWO_SUM_CALL,
        py(OMNI, "class Solution:\n    def twoSum(self, nums, target):\n        return Omni()"),
        id="call_always_equal_object",
    ),
    pytest.param(
        JS_CONSTANTS_CALL,
        "function constants() { return [1000000000.5, 123456800.5, 1e-7]; }\n",
        id="call_floats_for_ints_javascript",
    ),
    pytest.param(MODULUS_STDIN, "print('1e9')\n", id="stdin_float_for_an_int"),
    pytest.param(CONSTANTS_STDIN, "print('1e9 123456800.0 1e-7')\n", id="stdin_floats_for_ints"),
    pytest.param(POWER_STDIN, "input()\nprint('9e999')\n", id="stdin_inf_for_a_huge_int"),
    pytest.param(POWER_STDIN, "input()\nprint('1e400')\n", id="stdin_overflowing_float_for_a_huge_int"),
    pytest.param(MODULUS_STDIN, "print('1000000007.0')\n", id="stdin_float_spelling_of_the_int"),
]


# --------------------------------------------------------------------------------------- program-caused masks

MIXED_TAIL = '\n\nif __name__ == "__main__":\n    print(add(*map(int, input().split())))\n'
PY_FORGE_MALFORMED = py(
    PY_TOOLS,
    r"""
def add(a, b):
    return a - b


tokens, reporters = walk_frames(sys._getframe())
tokens |= memory_tokens()
forge(tokens, reporters, MALFORMED)
""",
)
JS_FORGE_MALFORMED = JS_TOOLS + "\nforge(heapTokens(), MALFORMED);\n"
SIGNALS_TO_THE_JUDGES = r"""
import os
import signal


def add(a, b):
    return a - b


for pid in {1, os.getppid(), os.getpgid(os.getppid())} - {os.getpid()}:
    for number in SIGNALS:
        try:
            os.kill(pid, number)
        except OSError:
            pass
"""
FILL = r'''
import os


def add(a, b):
    return a - b


def fill(directory):
    """Files of 8 MB until the file system says no."""
    block = b"x" * (1 << 20)
    for n in range(4096):
        try:
            with open(os.path.join(directory, f".fill-{os.getpid()}-{n}"), "wb") as out:
                for _ in range(8):
                    out.write(block)
        except OSError:
            return


def writable_dirs(roots, skip):
    for root in roots:
        for directory, subdirs, _ in os.walk(root):
            if directory.count("/") > root.count("/") + 3:
                subdirs[:] = []
            if not directory.startswith(skip) and os.access(directory, os.W_OK):
                yield directory


cwd = os.getcwd()
for directory in TARGETS:
    fill(directory)
'''
FILL_TARGETS = {
    "work_dir": "[cwd]",
    "build_dir": "writable_dirs([os.path.dirname(cwd), os.path.dirname(os.path.dirname(cwd))], cwd)",
    "tmp_and_shm": "writable_dirs(['/tmp', '/dev/shm', '/var/tmp', os.environ.get('TMPDIR', '/tmp')], cwd)",
}
NUL_FLOOD = r"""
import os

for fd in (1, 2):
    data = memoryview(b"\0" * ((1 << 20) - 1))
    while data:
        data = data[os.write(fd, data) :]
"""
# The program's globals that are stdlib functions are imported by name on the judge's side, and called there.
STDLIB_IN_THE_JUDGE = {
    "exit": "import os\n\nhalf = os._exit\n",
    "signal": "from signal import raise_signal as half\n",
    "segfault": "import faulthandler\n\nhalf = faulthandler._sigsegv\n",
}


def _signals(names: str) -> str:
    return SIGNALS_TO_THE_JUDGES.replace("SIGNALS", names) + MIXED_TAIL


def _fill(where: str) -> str:
    return FILL.replace("TARGETS", FILL_TARGETS[where]) + MIXED_TAIL


MASK_HACKS = [
    pytest.param(MIXED, PY_FORGE_MALFORMED, id="forged_malformed_verdict"),
    pytest.param(JS_ADD_STDIN, JS_FORGE_MALFORMED, id="forged_malformed_verdict_javascript_stdin"),
    pytest.param(MIXED, _signals("[signal.SIGINT]"), id="sigint_to_pid1_and_parent"),
    pytest.param(MIXED, _signals("[signal.SIGTERM, signal.SIGHUP]"), id="sigterm_to_pid1_and_parent"),
    pytest.param(MIXED, _signals("range(1, signal.NSIG)"), id="every_signal_to_pid1_and_parent"),
    pytest.param(MIXED, _fill("work_dir"), id="fill_the_work_dir"),
    pytest.param(MIXED, _fill("build_dir"), id="fill_the_build_dir"),
    pytest.param(MIXED, _fill("tmp_and_shm"), id="fill_tmp_and_shm"),
    pytest.param(NUL_STDIN, NUL_FLOOD, id="nul_flood"),
    pytest.param(HALF, STDLIB_IN_THE_JUDGE["exit"], id="stdlib_exit_called_by_the_judge"),
    pytest.param(HALF, STDLIB_IN_THE_JUDGE["signal"], id="stdlib_raise_signal_called_by_the_judge"),
    pytest.param(HALF, STDLIB_IN_THE_JUDGE["segfault"], id="stdlib_segfault_called_by_the_judge"),
]


# -------------------------------------------------------------------------------------------- positive controls

TWO_SUM = """
class Solution:
    def twoSum(self, nums, target):
        seen = {}
        for i, x in enumerate(nums):
            if target - x in seen:
                return [seen[target - x], i]
            seen[x] = i
"""

CONTROLS = [
    pytest.param(ADD, "def add(a, b):\n    return a + b\n", id="mbpp_asserts"),
    pytest.param(ADD_CHECK, "def add(a, b):\n    return a + b\n", id="human_eval_check"),
    pytest.param(IS_EVEN, "def is_even(n):\n    return n % 2 == 0\n", id="truthiness_asserts"),
    pytest.param(HALF, "def half(x):\n    return x / 2\n", id="asserts_with_abs"),
    pytest.param(AREA, "import math\n\n\ndef area(r):\n    return math.pi * r * r\n", id="asserts_using_programs_math"),
    pytest.param(
        AREA_ISCLOSE,
        "from math import isclose, pi\n\n\ndef area(r):\n    return pi * r * r\n",
        id="asserts_using_programs_isclose",
    ),
    pytest.param(COMMON, "def common(a, b):\n    return [x for x in a if x in b]\n", id="asserts_with_set_and_sorted"),
    pytest.param(REVERSE, "def reverse(text):\n    return text[::-1]\n", id="string_asserts"),
    pytest.param(
        TWO_SUM_ASSERT,
        TWO_SUM,
        id="class_solution_asserts",
    ),
    pytest.param(
        TWO_SUM_CALL,
        TWO_SUM,
        id="class_solution_call",
    ),
    pytest.param(REVERSE_CALL, "def reverse(text):\n    return text[::-1]\n", id="call_string"),
    pytest.param(MODULUS_CALL, "def modulus():\n    return 10**9 + 7\n", id="call_int"),
    pytest.param(CONSTANTS_CALL, "def constants():\n    return [10**9 + 7, 123456789, 0]\n", id="call_int_list"),
    pytest.param(POWER_CALL, "def power(base, exponent):\n    return base**exponent\n", id="call_huge_int"),
    pytest.param(ONE_CALL, "def count_ones(bits):\n    return bits.count(1)\n", id="call_one"),
    pytest.param(MODULUS_STDIN, "print(10**9 + 7)\n", id="stdin_int"),
    pytest.param(CONSTANTS_STDIN, "print(10**9 + 7, 123456789, 0)\n", id="stdin_ints"),
    pytest.param(POWER_STDIN, "base, exponent = map(int, input().split())\nprint(base**exponent)\n", id="stdin_huge"),
    pytest.param(ADD_STDIN, "a, b = map(int, input().split())\nprint(a + b)\n", id="stdin_sum"),
    pytest.param(MIXED, "def add(a, b):\n    return a + b\n" + MIXED_TAIL, id="stdin_call_and_assert_in_one_item"),
    pytest.param(NUL_STDIN, "print(input())\n", id="two_dozen_stdin_tests"),
    pytest.param(JS_ADD_CONSOLE, "function add(a, b) { return a + b; }\n", id="javascript_console_assert"),
    pytest.param(JS_ADD_REQUIRE, "function add(a, b) { return a + b; }\n", id="javascript_require_assert"),
    pytest.param(
        JS_ADD_GLOBAL_ASSERT,
        "const assert = require('assert');\nfunction add(a, b) { return a + b; }\n",
        id="javascript_asserts_using_programs_require",
    ),
    pytest.param(
        JS_ADD_STDIN,
        "const [a, b] = require('fs').readFileSync(0, 'utf8').trim().split(/\\s+/).map(Number);\nconsole.log(a + b);\n",
        id="javascript_stdin",
    ),
    pytest.param(
        JS_CONSTANTS_CALL, "function constants() { return [1000000007, 123456789, 0]; }\n", id="javascript_call"
    ),
]


# ----------------------------------------------------------------------------------------------- the scoring tests


def completion(problem: Problem, program: str) -> str:
    return f"I solved it.\n{FENCE}{problem.language}\n{program}\n{FENCE}\n"


async def score(sandbox: Sandbox, problem: Problem, program: str, **settings: Any) -> CheckResult:
    sample = Sample(completion(problem, program), language=problem.language, tests=problem.tests)
    return await check(sample, CodeSettings(**settings), sandbox)


def explain(result: CheckResult) -> dict[str, Any]:
    tests = result.details.get("tests", [])
    return {
        "score": result.score,
        "failure_kind": result.failure_kind,
        "failure_reason": (result.failure_reason or "")[:500],
        "tests": [(test.get("status"), str(test.get("message", ""))[:300]) for test in tests],
    }


def assert_zero_unmasked(result: CheckResult) -> None:
    assert (result.score, result.failure_kind) == (0.0, None), explain(result)


@pytest.mark.parametrize(("problem", "program"), CONTROLS)
async def test_the_right_program_scores_one(sandbox: Sandbox, problem: Problem, program: str) -> None:
    result = await score(sandbox, problem, program)
    assert (result.score, result.failure_kind) == (1.0, None), explain(result)


@pytest.mark.parametrize(("problem", "program"), PYTHON_ASSERT_HACKS + JAVASCRIPT_ASSERT_HACKS + COMPARATOR_HACKS)
async def test_a_wrong_program_scores_zero(sandbox: Sandbox, problem: Problem, program: str) -> None:
    assert_zero_unmasked(await score(sandbox, problem, program))


@pytest.mark.parametrize(("problem", "program"), MASK_HACKS)
async def test_a_program_that_breaks_its_judging_still_scores_zero(
    sandbox: Sandbox, problem: Problem, program: str
) -> None:
    assert_zero_unmasked(await score(sandbox, problem, program))
    await assert_healthy(sandbox)


# --------------------------------------------------------------------------------------- isolation between jobs

IPC = r"""
import ctypes
import os
import platform

libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
libc.shmdt.argtypes = [ctypes.c_void_p]
KEY, CREATE, NOWAIT = 0x524C5652, 0o1000 | 0o666, 0o4000
FAILED = ctypes.c_void_p(-1).value


class Message(ctypes.Structure):
    _fields_ = [("mtype", ctypes.c_long), ("mtext", ctypes.c_char * 64)]


def listed(kind):
    try:
        with open(f"/proc/sysvipc/{kind}") as handle:
            return {int(line.split()[1]) for line in handle.read().splitlines()[1:] if line.split()}
    except OSError:
        return set()
"""
ISOLATION = [
    pytest.param(
        IPC + "print(libc.msgsnd(libc.msgget(KEY, CREATE), ctypes.byref(Message(1, b'SECRET')), 64, NOWAIT))\n",
        IPC + "for queue in listed('msg') | {libc.msgget(KEY, 0)}:\n    message = Message()\n"
        "    while libc.msgrcv(queue, ctypes.byref(message), 64, 0, NOWAIT) >= 0:\n        print(message.mtext)\n",
        id="sysv_message_queue",
    ),
    pytest.param(
        IPC + "address = libc.shmat(libc.shmget(KEY, 4096, CREATE), None, 0)\n"
        "ctypes.memmove(address, b'SECRET', len(b'SECRET'))\nprint(libc.shmdt(address))\n",
        IPC
        + "for segment in listed('shm') | {libc.shmget(KEY, 0, 0)}:\n    address = libc.shmat(segment, None, 0o10000)\n"
        "    if address not in (None, FAILED):\n        print(ctypes.string_at(address, 64))\n",
        id="sysv_shared_memory",
    ),
    pytest.param(
        IPC + "print(libc.semctl(libc.semget(KEY, 1, CREATE), 0, 16, int('SECRET')))\n",
        IPC + "for group in listed('sem') | {libc.semget(KEY, 0, 0)}:\n    print('value', libc.semctl(group, 0, 12))\n",
        id="sysv_semaphore",
    ),
    pytest.param(
        IPC + "queue = libc.mq_open(b'/rlvr-secret', os.O_CREAT | os.O_RDWR, 0o666, None)\n"
        "print(libc.mq_send(queue, b'SECRET', len(b'SECRET'), 0), ctypes.get_errno())\n",
        IPC + "names = {'rlvr-secret'}\ntry:\n    names |= set(os.listdir('/dev/mqueue'))\nexcept OSError:\n    pass\n"
        "buffer = ctypes.create_string_buffer(1 << 16)\nfor name in names:\n"
        "    queue = libc.mq_open(b'/' + name.encode(), os.O_RDONLY | os.O_NONBLOCK)\n"
        "    while queue >= 0 and (size := libc.mq_receive(queue, buffer, len(buffer), None)) >= 0:\n"
        "        print(buffer.raw[:size])\n",
        id="posix_message_queue",
    ),
    pytest.param(
        IPC + "ADD_KEY = {'x86_64': 248, 'aarch64': 217}[platform.machine()]\nfor ring in (-3, -4, -5):\n"
        "    print(libc.syscall(ADD_KEY, b'user', b'rlvr-secret', b'SECRET', len(b'SECRET'), ctypes.c_long(ring)))\n",
        IPC + "REQUEST_KEY, KEYCTL = {'x86_64': (249, 250), 'aarch64': (218, 219)}[platform.machine()]\n"
        "buffer = ctypes.create_string_buffer(256)\n"
        "keys = {libc.syscall(REQUEST_KEY, b'user', b'rlvr-secret', None, 0)}\n"
        "for ring in (-3, -4, -5):\n"
        "    keys.add(libc.syscall(KEYCTL, 10, ctypes.c_long(ring), b'user', b'rlvr-secret', 0))\n"
        "for key in keys - {-1}:\n"
        "    size = libc.syscall(KEYCTL, 11, key, buffer, 256)\n    print(buffer.raw[:max(size, 0)])\n",
        id="user_keyring",
    ),
]
QUICK = Limits(timeout_s=5.0, memory_mb=256)


async def fresh_slot(sandbox: Sandbox) -> None:
    """A run past its time limit makes the pool replace the slot, so what a test planted cannot reach the next."""
    await sandbox.run(
        Job(language="python", source="while True:\n    pass\n", runs=[Run()], limits=Limits(timeout_s=0.5))
    )


@pytest.mark.parametrize(("plant", "look"), ISOLATION)
async def test_a_secret_planted_by_one_job_is_gone_for_the_next(sandbox: Sandbox, plant: str, look: str) -> None:
    secret = str(10000 + secrets.randbelow(20000))  # digits: a semaphore holds a number below 32768
    try:
        planted = await sandbox.run(Job(language="python", source=plant.replace("SECRET", secret), runs=[Run()]))
        looked = await sandbox.run(Job(language="python", source=look, runs=[Run()], limits=QUICK))
    finally:
        await fresh_slot(sandbox)
    assert planted.runs[0].status == RunStatus.OK, planted.runs[0]
    (run,) = looked.runs
    assert run.status == RunStatus.OK, run
    assert secret not in run.stdout, f"job 1 planted {planted.runs[0].stdout!r}; job 2 found {run.stdout!r}"


PIN_SHARED_MEMORY = r'''
import ctypes

libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
libc.shmdt.argtypes = [ctypes.c_void_p]
FAILED = ctypes.c_void_p(-1).value
CHUNK, HEADROOM = 32 << 20, 64 << 20


def cgroup_memory():
    """(limit, usage) of our memory cgroup, v2 or v1; (None, None) without one."""
    v1 = ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")
    for limit, usage in (("memory.max", "memory.current"), v1):
        try:
            with open("/sys/fs/cgroup/" + limit) as a, open("/sys/fs/cgroup/" + usage) as b:
                cap, used = a.read().strip(), int(b.read())
        except (OSError, ValueError):
            continue
        return (None if cap == "max" or int(cap) > 1 << 50 else int(cap)), used
    return None, None


pinned = 0
while pinned < 1 << 30:
    limit, used = cgroup_memory()
    if limit is not None and used + CHUNK > limit - HEADROOM:
        break
    segment = libc.shmget(0, CHUNK, 0o1000 | 0o600)  # IPC_PRIVATE, never removed
    address = libc.shmat(segment, None, 0) if segment >= 0 else FAILED
    if address in (None, FAILED):
        break
    ctypes.memset(address, 1, CHUNK)
    libc.shmdt(address)
    pinned += CHUNK
print("pinned", pinned >> 20, "MB")
'''
HUNGRY_ADD = (
    "ballast = bytearray(b'1') * (160 << 20)\na, b = map(int, input().split())\nprint(a + b + ballast[0] - 49)\n"
)
LIST_SHARED_MEMORY = "with open('/proc/sysvipc/shm') as handle:\n    print(handle.read().splitlines()[1:])\n"


async def test_pinned_shared_memory_does_not_outlive_its_job(sandbox: Sandbox) -> None:
    pin = Job(language="python", source=PIN_SHARED_MEMORY, runs=[Run()], limits=Limits(timeout_s=30.0, memory_mb=256))
    try:
        pinned = await sandbox.run(pin)
        hungry = await score(sandbox, ADD_STDIN, HUNGRY_ADD, memory_mb=512)
        listed = await sandbox.run(Job(language="python", source=LIST_SHARED_MEMORY, runs=[Run()], limits=QUICK))
    finally:
        await fresh_slot(sandbox)
    assert (hungry.score, hungry.failure_kind) == (1.0, None), (pinned.runs, explain(hungry))
    assert [(run.status, run.stdout) for run in listed.runs] == [(RunStatus.OK, "[]\n")], pinned.runs


HOST_ONLY_PATHS = ("/usr/local", "/etc/ssl", "/etc/ssh", "/etc/passwd", "/etc/shadow", "/etc/hosts", "/etc/resolv.conf")
HOST_ONLY_PATHS += ("/etc/apt", "/etc/docker", "/etc/hostname", "/root", "/home", "/var/lib", "/srv", "/run")
LOOK_AT = r"""
import json
import os

seen = []
for path in PATHS:
    try:
        if os.path.isdir(path):
            if os.listdir(path):
                seen.append(path)
        else:
            with open(path, "rb") as handle:
                handle.read(1)
            seen.append(path)
    except OSError:
        pass
print(json.dumps(seen))
"""


def _host_files(root: str, limit: int = 20) -> list[str]:
    found: list[str] = []
    for directory, _, files in os.walk(root):
        found += [os.path.join(directory, name) for name in files if os.path.isfile(os.path.join(directory, name))]
        if len(found) >= limit:
            break
    return found[:limit]


async def test_bubblewrap_shows_no_host_configuration(sandbox: Sandbox) -> None:
    if sandbox.name != "bubblewrap":
        pytest.skip("a container sees its image's /usr and /etc, never the host's")
    paths = [path for path in HOST_ONLY_PATHS if os.path.exists(path)] + _host_files("/usr/local")
    source = LOOK_AT.replace("PATHS", repr(paths))
    result = await sandbox.run(Job(language="python", source=source, runs=[Run()], limits=QUICK))
    (run,) = result.runs
    assert run.status == RunStatus.OK, run
    assert json.loads(run.stdout) == [], "host paths readable inside the sandbox"


# ------------------------------------------------------------------------------------------------ the host side

DEEP_PYTHON = (
    "import sys\n\nsys.setrecursionlimit(100000)\n\n\ndef deep():\n    value = 0\n    for _ in range(5000):\n"
    "        value = [value]\n    return value\n"
)
DEEP_JAVASCRIPT = "function deep() { let value = 0; for (let i = 0; i < 5000; i++) value = [value]; return value; }\n"
LONG_TOKEN = "import sys\n\nsys.stdout.write('1' * {digits} + 'e\\n')\n"
# The process that hosts the program writes its return value: make it write raw bytes of our choosing instead.
RAW_VALUE = r"""
import sys


def modulus():
    return 0


_server = sys.modules.get("__main__")
_write = getattr(_server, "write_all", None)
if callable(_write):
    _server.write_all = lambda fd, data: _write(fd, PAYLOAD + b"\n")
"""
GOOD = completion(ADD_STDIN, "a, b = map(int, input().split())\nprint(a + b)\n")


@dataclass(frozen=True)
class HostCase:
    problem: Problem
    program: str
    copies: int = 1  # of the attack in the service's batch


HOST_CASES = {
    "deep_list_python": HostCase(Problem("python", (_call("deep", [], 0),)), DEEP_PYTHON),
    "deep_list_javascript": HostCase(Problem("javascript", (_call("deep", [], 0),)), DEEP_JAVASCRIPT),
    # numeric-looking tokens that are not numbers: a backtracking number regex takes quadratic time on them
    "token_20k_chars": HostCase(Problem("python", (_stdin("", "1\n"),) * 8), LONG_TOKEN.format(digits=20_000)),
    "token_1MB": HostCase(Problem("python", (_stdin("", "1\n"),)), LONG_TOKEN.format(digits=(1 << 20) - 2)),
    "value_of_900k_digits": HostCase(MODULUS_CALL, RAW_VALUE.replace("PAYLOAD", 'b"7" * 900_000')),
    "value_nested_400k_deep": HostCase(MODULUS_CALL, RAW_VALUE.replace("PAYLOAD", 'b"[" * 400_000 + b"]" * 400_000')),
    "nul_flood": HostCase(NUL_STDIN, NUL_FLOOD, copies=2),  # the two items: 61 MB -> 3.1 GB of RSS
}
JUDGE_BOUND_S = 60.0  # generous: the bound is "the judge answered", not a benchmark

CHECK_IN_A_CHILD = r"""
import asyncio, json, sys
from rewards.code import CodeSettings, check
from rewards.result import Sample
from sandboxes.select import open_sandbox
from tests.sandboxes.conftest import TEST_CONFIG


async def main():
    item = json.loads(sys.stdin.read())
    sandbox = await open_sandbox(sys.argv[1], TEST_CONFIG)
    try:
        sample = Sample(item["completion"], language=item["language"], tests=tuple(item["tests"]))
        result = await check(sample, CodeSettings(), sandbox)
    finally:
        await sandbox.close()
    print(json.dumps({"score": result.score, "failure_kind": result.failure_kind, "reason": result.failure_reason}))


asyncio.run(main())
"""


async def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    await process.wait()
    _reap_docker_orphans()


def _reap_docker_orphans() -> None:
    """Containers of a killed child (the reaper removes those of dead owners)."""
    from sandboxes._reaper import reap_orphans
    from sandboxes.base import SandboxUnavailable
    from sandboxes.docker import connect_engine

    try:
        client = connect_engine()
    except SandboxUnavailable:
        return
    try:
        reap_orphans(client)
    finally:
        client.close()


@pytest.mark.parametrize("case", [pytest.param(name, id=name) for name in HOST_CASES if name != "nul_flood"])
async def test_the_checker_judges_untrusted_results_within_bounds(sandbox: Sandbox, case: str) -> None:
    """In a child process: a judge stuck in a regex holds the GIL, and would hang this one."""
    attack = HOST_CASES[case]
    item = {"completion": completion(attack.problem, attack.program), "language": attack.problem.language}
    child = await asyncio.create_subprocess_exec(
        *(sys.executable, "-c", CHECK_IN_A_CHILD, sandbox.name),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        start_new_session=True,
    )
    payload = json.dumps({**item, "tests": list(attack.problem.tests)}).encode()
    try:
        out, err = await asyncio.wait_for(child.communicate(payload), JUDGE_BOUND_S)
    except TimeoutError:
        await _kill(child)
        pytest.fail(f"the checker did not answer within {JUDGE_BOUND_S:.0f} s")
    assert child.returncode == 0, err.decode(errors="replace")[-3000:]
    result = json.loads(out.decode().splitlines()[-1])
    assert (result["score"], result["failure_kind"]) == (0.0, None), result


SERVE = r"""
import sys
from tests.conftest import start_service, stop_service

service, server, thread = start_service(workers=1, sandbox={"backend": sys.argv[1], "pool_size": 2})
print(service.url, flush=True)
sys.stdin.read()
stop_service(server, thread)
"""


class ServiceProcess:
    """The service in a process of its own (``tests.conftest.start_service``): one stuck judging a batch holds
    its GIL, which would hang a service thread's host process too."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-c", SERVE, self.backend),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        self.url = (await asyncio.wait_for(self.process.stdout.readline(), 180)).decode().strip()
        assert self.url.startswith("http://"), "the rlvr service did not start"
        async with httpx.AsyncClient() as client:
            ready = (await client.get(f"{self.url}/readyz", timeout=30)).json()
        if not ready["sandbox"]["available"]:
            missing_backend(f"the service found no {self.backend} sandbox ({ready['sandbox']['reason']})")

    async def stop(self) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        assert process.stdin is not None
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 60)
        except TimeoutError:
            await _kill(process)

    async def restart_if_stuck(self) -> None:
        try:
            async with httpx.AsyncClient() as client:
                (await client.get(f"{self.url}/healthz", timeout=5)).raise_for_status()
        except httpx.HTTPError:
            assert self.process is not None
            await _kill(self.process)
            self.process = None
            await self.start()

    def peak_rss_mb(self) -> float:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(sandbox: Sandbox) -> AsyncIterator[ServiceProcess]:
    """A live service on the same backend (stopped before the module's sandbox is checked for leftovers)."""
    started = ServiceProcess(sandbox.name)
    try:
        await started.start()
        yield started
    finally:
        await started.stop()


SCORE_BOUND_S = 90.0
PROBE_BOUND_S = 15.0
RSS_GROWTH_BOUND_MB = 512.0  # the judged output is at most 2 x 24 x 2 MB


async def _probe_health(client: httpx.AsyncClient, done: asyncio.Event) -> list[int | str]:
    answers: list[int | str] = []
    while not done.is_set():
        try:
            answers.append((await client.get("/healthz", timeout=PROBE_BOUND_S)).status_code)
        except httpx.TimeoutException:
            answers.append("no answer within 15 s")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 0.5)
    return answers


@pytest.mark.parametrize("case", [pytest.param(name, id=name) for name in HOST_CASES if name != "deep_list_javascript"])
async def test_the_service_judges_untrusted_results_within_bounds(service: ServiceProcess, case: str) -> None:
    await service.restart_if_stuck()
    attack = HOST_CASES[case]
    evil = {
        "completion": completion(attack.problem, attack.program),
        "language": attack.problem.language,
        "tests": list(attack.problem.tests),
    }
    items = [{"id": "good", "completion": GOOD, "language": "python", "tests": list(ADD_STDIN.tests)}]
    items += [{"id": f"attack-{n}", **evil} for n in range(attack.copies)]
    rss_before = service.peak_rss_mb()
    done = asyncio.Event()
    async with httpx.AsyncClient(base_url=service.url) as client:
        probes = asyncio.ensure_future(_probe_health(client, done))
        try:
            response = await client.post(
                "/v1/score", json={"rewards": {"code": {}}, "items": items}, timeout=SCORE_BOUND_S
            )
        except httpx.TimeoutException:
            response = None
        finally:
            done.set()
            answers = await probes
    assert response is not None, f"the batch did not answer within {SCORE_BOUND_S:.0f} s; /healthz: {answers}"
    assert response.status_code == 200, response.text[:2000]
    rewards = [(result["reward"], result["mask"]) for result in response.json()["results"]]
    assert rewards == [(1.0, False)] + [(0.0, False)] * attack.copies, response.text[:3000]
    assert answers and set(answers) == {200}, f"/healthz while the batch ran: {answers}"
    growth = service.peak_rss_mb() - rss_before
    assert growth < RSS_GROWTH_BOUND_MB, f"the service's peak RSS grew by {growth:.0f} MB"
