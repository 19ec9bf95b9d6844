"""Languages are data: one ``LanguageSpec`` per language in the literal ``LANGUAGES`` table.

The host resolves a job's language here and sends the resident runner plain argv lists, so the runner inside
the sandbox needs no table. Argv entries may hold ``{memory_mb}`` (the job's memory cap), filled in by
``LanguageSpec.compile_argv`` / ``LanguageSpec.run_argv``: a JIT such as the JVM needs its heap cap on its
command line, and an address-space rlimit of ``memory_mb + address_space_headroom_mb`` (its code cache,
metaspace and thread stacks are reserved address space, not heap).

Toolchains are found on the sandbox's own PATH (``/usr/local/bin:/usr/bin:/bin``; bubblewrap hides the host's
``/usr/local``); a backend asks
``available_languages(which)`` which entries its sandbox can actually run.

Exceptions::

    ValueError
    └── UnknownLanguage     not a name or alias in the table (or its toolchain is missing): .language, .valid
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = [
    "COMPILE_ERROR_EXIT",
    "COMPILE_ERROR_MARK",
    "LANGUAGES",
    "LanguageSpec",
    "UnknownLanguage",
    "available_languages",
    "resolve_language",
]


class UnknownLanguage(ValueError):
    def __init__(self, language: str, valid: Iterable[str]) -> None:
        self.language = language
        self.valid = tuple(sorted(valid))
        super().__init__(f"unknown language {language!r}; valid: {', '.join(self.valid)}")


@dataclass(frozen=True)
class LanguageSpec:
    name: str
    aliases: tuple[str, ...]
    source_file: str  # the source is written to this name in the job's work dir
    compile: tuple[str, ...] | None  # None: interpreted, nothing to compile
    run: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    address_space_headroom_mb: int = 0  # added to the job's memory cap for RLIMIT_AS (JIT reservations)
    compile_headroom_mb: int = 0  # added to the compile memory cap
    min_processes: int = 1  # JVM/Go/V8 need threads: RLIMIT_NPROC counts them
    stack_mb: int | None = None  # RLIMIT_STACK; None: the memory cap (up to 1 GB). glibc sizes every new
    # thread's stack by it, so a threaded runtime under RLIMIT_AS needs a small one
    output_files: tuple[str, ...] = ()  # informative: what compile leaves behind

    def compile_argv(self, memory_mb: int) -> list[str] | None:
        return None if self.compile is None else [arg.format(memory_mb=memory_mb) for arg in self.compile]

    def run_argv(self, memory_mb: int) -> list[str]:
        return [arg.format(memory_mb=memory_mb) for arg in self.run]

    def tools(self) -> tuple[str, ...]:
        """The executables this language needs on the sandbox's PATH."""
        first = (self.compile[0],) if self.compile else ()
        return (*first, self.run[0]) if not self.run[0].startswith("./") else first


_JVM_FLAGS = (
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:ReservedCodeCacheSize=64m",
    "-XX:CompressedClassSpaceSize=64m",
    "-XX:MaxMetaspaceSize=192m",
    "-Xss16m",
)

# python3 -S starts ~10 ms faster than with site, which is also what defines exit() and quit(); this loader puts
# them back and runs the file as __main__. It reads nothing else and writes nothing, except that a file that does
# not compile exits with COMPILE_ERROR_EXIT and COMPILE_ERROR_MARK first on stderr: the checker's compile error,
# without a compile step (a separate interpreter start) per item. A program cannot run before that point, and
# faking a compile error never pays (it scores at most what failing every test scores).
COMPILE_ERROR_EXIT = 3
COMPILE_ERROR_MARK = "rlvr: compile error\n"
_PYTHON_MAIN = f"""import sys
__builtins__.exit = __builtins__.quit = sys.exit
del sys.argv[0]
__file__ = sys.argv[0]
try:
    __code__ = compile(open(__file__, 'rb').read(), __file__, 'exec')
except (SyntaxError, ValueError) as error:
    import traceback
    sys.stderr.write({COMPILE_ERROR_MARK!r} + ''.join(traceback.format_exception_only(type(error), error)))
    sys.exit({COMPILE_ERROR_EXIT})
del sys
exec(__code__)
"""

LANGUAGES: dict[str, LanguageSpec] = {
    "python": LanguageSpec(
        name="python",
        aliases=("python3", "py", "py3"),
        source_file="main.py",
        compile=None,  # a syntax error is still a CE: see _PYTHON_MAIN
        run=("python3", "-S", "-c", _PYTHON_MAIN, "main.py"),
        env={"PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8", "PYTHONHASHSEED": "0"},
        stack_mb=64,
    ),
    "cpp": LanguageSpec(
        name="cpp",
        aliases=("c++", "cpp17", "cxx", "cc"),
        source_file="main.cpp",
        # gold links a small program ~100 ms faster than bfd; it ships with binutils beside g++ (host and image).
        # /opt/rlvr-pch holds precompiled <iostream> and <bits/stdc++.h> in the runtime image (built with these
        # -std and -O flags, see sandboxes/images/runtime.Dockerfile); where it does not exist g++ ignores it.
        compile=("g++", "-std=c++17", "-O2", "-pipe", "-fuse-ld=gold", "-I/opt/rlvr-pch", "-o", "main", "main.cpp"),
        run=("./main",),
        compile_headroom_mb=1024,
        output_files=("main",),
    ),
    "c": LanguageSpec(
        name="c",
        aliases=("c11", "gcc"),
        source_file="main.c",
        compile=("gcc", "-std=c11", "-O2", "-pipe", "-fuse-ld=gold", "-o", "main", "main.c", "-lm"),
        run=("./main",),
        compile_headroom_mb=512,
        output_files=("main",),
    ),
    "java": LanguageSpec(
        name="java",
        aliases=("java17", "java8"),
        source_file="Main.java",
        compile=("javac", "-J-Xmx512m", *(f"-J{flag}" for flag in _JVM_FLAGS), "-encoding", "UTF-8", "Main.java"),
        run=("java", "-Xmx{memory_mb}m", *_JVM_FLAGS, "-Dfile.encoding=UTF-8", "Main"),
        address_space_headroom_mb=1536,
        compile_headroom_mb=2048,
        min_processes=64,
        stack_mb=8,
        output_files=("Main.class",),
    ),
    "javascript": LanguageSpec(
        name="javascript",
        aliases=("js", "node", "nodejs"),
        source_file="main.js",
        compile=("node", "--check", "main.js"),  # a syntax check: a syntax error is a CE
        run=("node", "--max-old-space-size={memory_mb}", "--stack-size=60000", "main.js"),
        address_space_headroom_mb=2048,
        compile_headroom_mb=2048,
        min_processes=16,
        stack_mb=64,
    ),
    "go": LanguageSpec(
        name="go",
        aliases=("golang",),
        source_file="main.go",
        compile=("go", "build", "-o", "main", "main.go"),
        run=("./main",),
        env={"GO111MODULE": "off", "GOFLAGS": "-buildvcs=false"},  # caches go under HOME = the job's work dir
        address_space_headroom_mb=512,
        compile_headroom_mb=2048,
        min_processes=32,
        stack_mb=64,
        output_files=("main",),
    ),
    "rust": LanguageSpec(
        name="rust",
        aliases=("rs", "rustc"),
        source_file="main.rs",
        compile=("rustc", "--edition", "2021", "-O", "-o", "main", "main.rs"),
        run=("./main",),
        compile_headroom_mb=2048,
        min_processes=16,
        output_files=("main",),
    ),
}


def _alias_table(languages: Iterable[LanguageSpec]) -> dict[str, LanguageSpec]:
    return {key: spec for spec in languages for key in (spec.name, *spec.aliases)}


def resolve_language(name: str, available: Iterable[str] | None = None) -> LanguageSpec:
    """The spec for a name or alias (case-insensitive); ``available`` restricts to those language names."""
    allowed = LANGUAGES if available is None else {key: LANGUAGES[key] for key in available}
    table = _alias_table(allowed.values())
    spec = table.get(name.strip().lower())
    if spec is None:
        raise UnknownLanguage(name, table)
    return spec


def available_languages(which: Callable[[str], bool]) -> tuple[str, ...]:
    """Names of the languages whose every tool ``which(tool)`` says the sandbox has."""
    return tuple(name for name, spec in LANGUAGES.items() if all(which(tool) for tool in spec.tools()))
