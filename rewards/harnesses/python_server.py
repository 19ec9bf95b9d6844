"""rlvr program server: loads the candidate's program (main.py) and runs it INSIDE the candidate's own process.

Started by the runner as the candidate's uid: ``python3 -S rlvr_server.py call`` or ``... serve``. Nothing here
is trusted by anyone: the program can rewrite this module, and all it could gain is to choose the data it sends,
which it could do by returning that data. Whoever reads what this process writes checks every byte.

- ``call``: calls ``fn_name(*args)`` from ``rlvr_call.json`` (a function of the program, or a method of its class
  ``Solution``) and writes the return value, tagged JSON (see rewards/compare.py), on the ``RLVR_OUT_FD`` pipe.
  With ``"tagged": true`` (asserts the host turned into calls) it makes each of ``"calls"`` in order, with tagged
  JSON arguments, global functions only, and writes one value a line.
- ``serve``: answers a harness's requests (one JSON line each on ``RLVR_IN_FD``; one reply line each on
  ``RLVR_OUT_FD``): the program's global names, calls, attributes, iteration. Plain values of exact types travel
  as values; every other object stays here and travels as an opaque handle ``{"h": [id, type, callable]}``.
"""

import builtins
import posix  # not os: python3 -S has not imported it, and importing it costs more than a small program
import sys

import rlvr_wire as json  # the C accelerator of json, without `re` (10 ms a start)

MAX_DEPTH = 200
PLAIN_SCALARS = (type(None), bool, str, int)


class Handles:
    def __init__(self):
        self.objects = {}

    def put(self, value):
        key = id(value)
        self.objects[key] = value
        return key

    def get(self, key):
        if type(key) is not int or key not in self.objects:
            raise LookupError("unknown handle")
        return self.objects[key]


def encode(value, handles, depth=0):
    """Plain data of exact types as tagged JSON; anything else as a handle (or an error without handles)."""
    kind = type(value)
    if depth > MAX_DEPTH:
        raise RecursionError("the value is nested too deeply")
    if kind in PLAIN_SCALARS:
        return value
    if kind is float:
        if value != value:
            return {"f": "nan"}
        if value in (float("inf"), float("-inf")):
            return {"f": "inf" if value > 0 else "-inf"}
        return value
    if kind is list:
        return [encode(item, handles, depth + 1) for item in value]
    if kind is tuple:
        return {"t": [encode(item, handles, depth + 1) for item in value]}
    if kind is set or kind is frozenset:
        return {"s" if kind is set else "fs": [encode(item, handles, depth + 1) for item in value]}
    if kind is dict:
        return {"d": [[encode(k, handles, depth + 1), encode(v, handles, depth + 1)] for k, v in value.items()]}
    if kind is bytes:
        import base64

        return {"b": base64.b64encode(value).decode("ascii")}
    if kind is complex:
        return {"c": [encode(value.real, handles, depth + 1), encode(value.imag, handles, depth + 1)]}
    name = getattr(kind, "__name__", "object")
    if type(name) is not str:
        name = "object"
    if handles is None:
        return {"h": [id(value), name]}
    return {"h": [handles.put(value), name, callable(value)]}


def decode(value, handles):
    """The harness's arguments: JSON, tagged the same way, with {"r": id} for a handle of ours."""
    if isinstance(value, list):
        return [decode(item, handles) for item in value]
    if not isinstance(value, dict):
        return value
    ((tag, body),) = value.items()
    if tag == "r":
        return handles.get(body)
    if tag == "t":
        return tuple(decode(item, handles) for item in body)
    if tag == "s":
        return {decode(item, handles) for item in body}
    if tag == "fs":
        return frozenset(decode(item, handles) for item in body)
    if tag == "d":
        return {decode(k, handles): decode(v, handles) for k, v in body}
    if tag == "b":
        import base64

        return base64.b64decode(body)
    if tag == "f":
        return float(body)
    if tag == "c":
        return complex(decode(body[0], handles), decode(body[1], handles))
    raise ValueError("unknown tag " + repr(tag))


def load_program():
    if not hasattr(builtins, "exit"):  # python3 -S skips site, which defines exit() and quit()
        builtins.exit = builtins.quit = sys.exit
    try:
        with open("main.py", "rb") as handle:
            program = compile(handle.read(), "solution.py", "exec")
    except (SyntaxError, ValueError) as error:  # the checker's compile error (see sandboxes/languages.py)
        import traceback

        sys.stderr.write("rlvr: compile error\n" + "".join(traceback.format_exception_only(type(error), error)))
        sys.stderr.flush()
        posix._exit(3)
    module = type(sys)("solution")
    module.__file__ = posix.getcwd() + "/main.py"
    sys.modules["solution"] = module
    exec(program, module.__dict__)
    return module


def function(module, name, global_only=False):
    target = getattr(module, name, None)
    solution = getattr(module, "Solution", None)
    if target is None and isinstance(solution, type) and not global_only:
        target = getattr(solution(), name, None)
    if not callable(target):
        sys.stderr.write("rlvr: the solution defines no function " + repr(name) + "\n")
        sys.stderr.flush()
        posix._exit(2)
    return target


def write_all(fd, data):
    while data:
        data = data[posix.write(fd, data) :]


def call(out_fd):
    with open("rlvr_call.json", encoding="utf-8") as handle:
        case = json.loads(handle.read())
    module = load_program()
    if case.get("tagged") is not True:
        value = function(module, case["fn_name"])(*case["args"])
        report(out_fd, value)
        return
    # asserts turned into calls: arguments of exact types (tuples stay tuples), only global functions, one value
    # a line, in order, each sent as soon as it is known
    for each in case["calls"]:
        report(out_fd, function(module, each["fn_name"], global_only=True)(*decode(each["args"], None)))


def report(out_fd, value):
    line = json.dumps(encode(value, None))
    sys.stdout.flush()
    write_all(out_fd, line.encode("utf-8", "surrogatepass") + b"\n")


def describe(exc):
    return [type(exc).__name__, str(exc)[-2000:]]


def global_names(module, handles, only):
    names = {}
    stdlib = getattr(sys, "stdlib_module_names", frozenset())
    for name, value in list(vars(module).items()):
        if name.startswith("__") or name not in only:
            continue
        if type(value) is type(sys):
            if value.__name__ in stdlib:
                names[name] = {"import": [value.__name__, ""]}
            continue
        origin = getattr(value, "__module__", None)
        qualname = getattr(value, "__qualname__", None)
        if type(origin) is str and type(qualname) is str and origin.split(".")[0] in stdlib and "<" not in qualname:
            names[name] = {"import": [origin, qualname]}
            continue
        try:
            names[name] = {"value": encode(value, handles)}
        except RecursionError:
            names[name] = {"value": {"h": [handles.put(value), type(value).__name__, callable(value)]}}
    return names


def answer(request, handles, module):
    op = request["op"]
    if op == "names":
        return {"ok": global_names(module, handles, frozenset(request["only"]))}
    target = handles.get(request["target"])
    if op == "call":
        args = decode(request["args"], handles)
        kwargs = {key: decode(value, handles) for key, value in request.get("kwargs", {}).items()}
        value = target(*args, **kwargs)
        after = [encode(arg, handles) if type(arg) in (list, dict, set) else None for arg in args]
        return {"ok": encode(value, handles), "after": after}
    if op == "getattr":
        return {"ok": encode(getattr(target, request["name"]), handles)}
    if op == "iter":
        return {"ok": encode(iter(target), handles)}
    if op == "next":
        return {"ok": encode(next(target), handles)}
    if op == "len":
        return {"ok": len(target)}
    if op == "bool":
        return {"ok": bool(target)}
    if op == "str":
        return {"ok": str(target)}
    if op == "getitem":
        return {"ok": encode(target[decode(request["key"], handles)], handles)}
    raise ValueError("unknown request " + repr(op))


def serve(in_fd, out_fd):
    requests = open(in_fd, "rb", buffering=1 << 16)
    try:
        module = load_program()
    finally:
        sys.stdout.flush()
    handles = Handles()
    for line in requests:
        try:
            reply = answer(json.loads(line), handles, module)
        except StopIteration:
            reply = {"stop": True}
        except RecursionError as exc:
            reply = {"raise": ["RecursionError", str(exc)]}
        except Exception as exc:  # the program's own exception: the harness raises it in the test
            reply = {"raise": describe(exc)}
        sys.stdout.flush()
        try:
            data = json.dumps(reply)
        except (ValueError, TypeError, RecursionError) as exc:
            data = json.dumps({"raise": describe(exc)})
        write_all(out_fd, data.encode("utf-8", "surrogatepass") + b"\n")


def main():
    sys.set_int_max_str_digits(0)
    mode = sys.argv[1]
    out_fd = int(posix.environ[b"RLVR_OUT_FD"])
    if mode == "call":
        call(out_fd)
    else:
        serve(int(posix.environ[b"RLVR_IN_FD"]), out_fd)


main()
