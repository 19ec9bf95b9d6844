"""rlvr judge harness: runs an item's assert tests against a program that lives in ANOTHER process.

Started by the runner as the harness uid, in a dir only that uid can read (``rlvr_case.json``: the test code
and entry point). The program runs as the candidate uid in its own process (rlvr_server.py ``serve``); this
process talks to it over two pipes and evaluates every assertion here, on plain data: values of exact types
decoded from the program's replies, or ``Remote`` proxies for its other objects. A proxy is equal only to
itself and offers no comparison of its own, so no object of the program ever decides whether a test passed.
The verdict goes to ``RLVR_REPORT_FD``, a pipe the program's process never holds.
"""

import builtins
import posix  # not os: python3 -S has not imported it, and importing it costs more than a small program
import sys

import rlvr_wire as json  # the C accelerator of json, without `re` (10 ms a start)

MAX_REPLY_BYTES = 16 << 20
MAX_DEPTH = 400
BUILTIN_EXCEPTIONS = {
    name: value
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, Exception) and not issubclass(value, AssertionError)
}


class ProgramGone(Exception):
    """The program's process ended or broke the protocol: the test cannot pass."""


class Connection:
    def __init__(self, in_fd, out_fd):
        self.replies = open(in_fd, "rb", buffering=1 << 16)
        self.out_fd = out_fd

    def ask(self, request):
        data = json.dumps(request).encode("utf-8", "surrogatepass") + b"\n"
        try:
            while data:
                data = data[posix.write(self.out_fd, data) :]
        except OSError:
            raise ProgramGone("the program stopped reading its requests") from None
        line = self.replies.readline(MAX_REPLY_BYTES + 1)
        if not line.endswith(b"\n"):
            raise ProgramGone("the program ended before it answered" if not line else "the program's reply is too big")
        try:
            reply = json.loads(line)
        except (ValueError, RecursionError):
            raise ProgramGone("the program's reply is not valid") from None
        if type(reply) is not dict:
            raise ProgramGone("the program's reply is not valid")
        return reply


class Remote:
    """An object that stays in the program's process; every use of it is a request."""

    __slots__ = ("_id", "_type")

    def __init__(self, key, type_name):
        object.__setattr__(self, "_id", key)
        object.__setattr__(self, "_type", type_name)

    def __repr__(self):
        return "<" + self._type + " object of the program>"

    def __eq__(self, other):
        return self is other

    def __ne__(self, other):
        return self is not other

    def __hash__(self):
        return hash(self._id)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return request({"op": "getattr", "target": self._id, "name": name})

    def __setattr__(self, name, value):
        raise AttributeError("cannot set attributes on an object of the program")

    def __call__(self, *args, **kwargs):
        encoded = [encode_argument(arg) for arg in args]
        kwargs_encoded = {key: encode_argument(value) for key, value in kwargs.items()}
        reply = raw_request({"op": "call", "target": self._id, "args": encoded, "kwargs": kwargs_encoded})
        for arg, after in zip(args, reply.get("after") or [], strict=False):
            if after is not None:
                update_in_place(arg, decode(after, 0))
        return decode(reply["ok"], 0)

    def __iter__(self):
        iterator = request({"op": "iter", "target": self._id})
        if type(iterator) is not Remote:
            raise TypeError("the program's iterator is not an object")
        return RemoteIterator(iterator)

    def __len__(self):
        value = request({"op": "len", "target": self._id})
        if type(value) is not int or value < 0:
            raise TypeError("the program's len() is not a non-negative int")
        return value

    def __bool__(self):
        value = request({"op": "bool", "target": self._id})
        if type(value) is not bool:
            raise TypeError("the program's bool() is not a bool")
        return value

    def __str__(self):
        value = request({"op": "str", "target": self._id})
        if type(value) is not str:
            raise TypeError("the program's str() is not a str")
        return value

    def __getitem__(self, key):
        return request({"op": "getitem", "target": self._id, "key": encode_argument(key)})


class RemoteIterator:
    def __init__(self, remote):
        self.remote = remote

    def __iter__(self):
        return self

    def __next__(self):
        reply = raw_request({"op": "next", "target": self.remote._id})
        if reply.get("stop") is True:
            raise StopIteration
        return decode(reply["ok"], 0)


CONNECTION = None


def raw_request(message):
    reply = CONNECTION.ask(message)
    if "raise" in reply:
        raise remote_exception(reply["raise"])
    if "ok" not in reply and "stop" not in reply:
        raise ProgramGone("the program's reply is not valid")
    return reply


def request(message):
    return decode(raw_request(message)["ok"], 0)


def remote_exception(described):
    if type(described) is not list or len(described) != 2 or not all(type(part) is str for part in described):
        return ProgramGone("the program's reply is not valid")
    name, message = described
    kind = BUILTIN_EXCEPTIONS.get(name, RuntimeError)
    if kind is StopIteration:
        kind = RuntimeError
    try:
        raised = kind(message if kind is not RuntimeError else name + ": " + message)
    except Exception:
        raised = RuntimeError(name + ": " + message)
    raised.rlvr_from_program = True  # the program raised it: a runtime error, unless the test catches it
    return raised


def decode(value, depth):
    """A reply's value: plain data of exact types, Remote for handles. Strict: anything else is the program's
    failure."""
    if depth > MAX_DEPTH:
        raise ProgramGone("the program's value is nested too deeply")
    kind = type(value)
    if value is None or kind in (bool, str, int, float):
        return value
    if kind is list:
        return [decode(item, depth + 1) for item in value]
    if kind is not dict or len(value) != 1:
        raise ProgramGone("the program's value is not valid")
    ((tag, body),) = value.items()
    try:
        if tag == "t":
            return tuple(decode(item, depth + 1) for item in checked_list(body))
        if tag == "s":
            return {decode(item, depth + 1) for item in checked_list(body)}
        if tag == "fs":
            return frozenset(decode(item, depth + 1) for item in checked_list(body))
        if tag == "d":
            pairs = [checked_list(pair) for pair in checked_list(body)]
            if any(len(pair) != 2 for pair in pairs):
                raise ProgramGone("the program's value is not valid")
            return {decode(k, depth + 1): decode(v, depth + 1) for k, v in pairs}
        if tag == "b" and type(body) is str:
            import base64

            return base64.b64decode(body, validate=True)
        if tag == "f" and body in ("inf", "-inf", "nan"):
            return float(body)
        if tag == "c":
            re, im = checked_list(body)
            return complex(checked_float(decode(re, depth + 1)), checked_float(decode(im, depth + 1)))
        if tag == "h" and type(body) is list and len(body) == 3 and type(body[0]) is int and type(body[1]) is str:
            return Remote(body[0], body[1][:200])
    except (TypeError, ValueError) as exc:
        raise ProgramGone("the program's value is not valid: " + str(exc)[:200]) from None
    raise ProgramGone("the program's value is not valid")


def checked_list(value):
    if type(value) is not list:
        raise ProgramGone("the program's value is not valid")
    return value


def checked_float(value):
    if type(value) not in (int, float):
        raise ProgramGone("the program's value is not valid")
    return value


def encode_argument(value, depth=0):
    """What the test passes to the program: plain values, or the program's own objects by reference."""
    if depth > MAX_DEPTH:
        raise TypeError("an argument is nested too deeply")
    kind = type(value)
    if value is None or kind in (bool, str, int):
        return value
    if kind is float:
        return value if value == value and value not in (float("inf"), float("-inf")) else {"f": repr(value)}
    if kind is Remote:
        return {"r": value._id}
    if isinstance(value, list):
        return [encode_argument(item, depth + 1) for item in value]
    if isinstance(value, tuple):
        return {"t": [encode_argument(item, depth + 1) for item in value]}
    if isinstance(value, set | frozenset):
        return {"s" if isinstance(value, set) else "fs": [encode_argument(item, depth + 1) for item in value]}
    if isinstance(value, dict):
        return {"d": [[encode_argument(k, depth + 1), encode_argument(v, depth + 1)] for k, v in value.items()]}
    if isinstance(value, bytes):
        import base64

        return {"b": base64.b64encode(value).decode("ascii")}
    if isinstance(value, complex):
        return {"c": [encode_argument(value.real), encode_argument(value.imag)]}
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    raise TypeError("rlvr cannot pass a " + kind.__name__ + " to the program (only plain data and its own objects)")


def update_in_place(original, after):
    """A list, dict or set the program changed in place changes here too (in-place problems)."""
    if type(original) is list and type(after) is list:
        original[:] = after
    elif type(original) is dict and type(after) is dict:
        original.clear()
        original.update(after)
    elif type(original) is set and type(after) is set:
        original.clear()
        original.update(after)


# Never bound from the program: what the test code takes from the builtins or from the standard library must be
# the real thing here, not the program's (a `sorted` or a `math` of the program's could say yes to anything).
RESERVED = frozenset(dir(builtins)) | sys.stdlib_module_names
NOT_IMPORTED = frozenset({"builtins", "code", "ctypes", "gc", "importlib", "inspect", "marshal", "os", "pdb"})
NOT_IMPORTED |= frozenset({"pickle", "posix", "shutil", "signal", "subprocess", "sys", "trace", "unittest"})
IMPORTABLE = (type(sys), type, type(len), type(lambda: None))


def used_names(code, entry):
    """Every name the test code (or its nested functions) mentions, and the entry point."""
    found, stack = {entry} if entry else set(), [code]
    while stack:
        current = stack.pop()
        found.update(current.co_names)
        stack.extend(const for const in current.co_consts if type(const) is type(current))
    return found


def namespace(names, wanted):
    """The test's scope: the program's globals that the test mentions (values, proxies, or stdlib objects it
    imported, imported here)."""
    scope = {"__name__": "__main__", "__builtins__": builtins}
    if type(names) is not dict:
        raise ProgramGone("the program's names are not valid")
    for name, entry in names.items():
        if type(name) is not str or name not in wanted or name.startswith("__") or type(entry) is not dict:
            continue
        if len(entry) != 1:
            continue
        if "import" in entry:
            bound = local_import(entry["import"])
            if bound is not None and (name not in RESERVED or bound is sys.modules.get(name)):
                scope[name] = bound
        elif "value" in entry and name not in RESERVED:
            scope[name] = decode(entry["value"], 0)
    return scope


def local_import(spec):
    """A module, class or function of the standard library that the program imported, imported here."""
    if type(spec) is not list or len(spec) != 2 or not all(type(part) is str for part in spec):
        return None
    module_name, qualname = spec
    if module_name.split(".")[0] not in sys.stdlib_module_names or module_name.split(".")[0] in NOT_IMPORTED:
        return None
    try:
        __import__(module_name)
        value = sys.modules[module_name]
        for part in qualname.split(".") if qualname else []:
            value = getattr(value, part)
    except Exception:
        return None
    return value if isinstance(value, IMPORTABLE) else None


def describe(exc, code):
    """The traceback, with the test's own lines shown (imported only now: a passing test never needs it)."""
    import linecache
    import traceback

    linecache.cache["test.py"] = (len(code), None, code.splitlines(True), "test.py")
    return "".join(traceback.format_exception(exc))[-2000:]


def run_tests(case):
    try:
        tests = compile(case["code"], "test.py", "exec")
    except (SyntaxError, ValueError) as exc:
        import traceback

        return {"bad_test": "".join(traceback.format_exception_only(type(exc), exc))[-2000:]}
    try:
        wanted = used_names(tests, case.get("entry_point"))
        scope = namespace(request_names(wanted), wanted)
        exec(tests, scope)
        entry = case.get("entry_point")
        if entry and callable(scope.get("check")):
            if entry not in scope:
                return {"failed": "the program defines no " + repr(entry)}
            scope["check"](scope[entry])
    except ProgramGone as exc:
        return {"error": str(exc)}
    except AssertionError as exc:
        return {"failed": describe(exc, case["code"])}
    except Exception as exc:
        if getattr(exc, "rlvr_from_program", False):
            return {"raised": describe(exc, case["code"])}
        return {"error": describe(exc, case["code"])}
    return {"passed": True}


def request_names(wanted):
    reply = CONNECTION.ask({"op": "names", "only": sorted(wanted)})
    if "ok" not in reply:
        raise ProgramGone("the program did not load")
    return reply["ok"]


def main():
    global CONNECTION
    sys.set_int_max_str_digits(100_000)  # big answers decode; a 16 MB integer is refused, not parsed for minutes
    with open("rlvr_case.json", encoding="utf-8") as handle:
        case = json.loads(handle.read())
    environ = posix.environ
    CONNECTION = Connection(int(environ[b"RLVR_IN_FD"]), int(environ[b"RLVR_OUT_FD"]))
    verdict = run_tests(case)
    data = json.dumps(verdict).encode("utf-8", "surrogatepass") + b"\n"
    report = int(environ[b"RLVR_REPORT_FD"])
    while data:
        data = data[posix.write(report, data) :]


main()
