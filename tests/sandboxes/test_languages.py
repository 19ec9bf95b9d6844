"""The language table: names and aliases resolve, and every language runs hello world, echoes stdin, and (when
compiled) reports a compile error with the compiler's message, on every backend.
"""

from __future__ import annotations

import pytest

from sandboxes.base import Job, Limits, Run, RunStatus, Sandbox
from sandboxes.languages import LANGUAGES, UnknownLanguage, available_languages, resolve_language


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("python", "python", id="python"),
        pytest.param("python3", "python", id="python3"),
        pytest.param("py", "python", id="py"),
        pytest.param("Python", "python", id="case_insensitive"),
        pytest.param(" cpp ", "cpp", id="surrounding_space"),
        pytest.param("c++", "cpp", id="c++"),
        pytest.param("cpp17", "cpp", id="cpp17"),
        pytest.param("cxx", "cpp", id="cxx"),
        pytest.param("c", "c", id="c"),
        pytest.param("java", "java", id="java"),
        pytest.param("js", "javascript", id="js"),
        pytest.param("node", "javascript", id="node"),
        pytest.param("nodejs", "javascript", id="nodejs_sandboxfusion_name"),
        pytest.param("golang", "go", id="golang"),
        pytest.param("rs", "rust", id="rs"),
    ],
)
def test_names_and_aliases_resolve(name: str, expected: str) -> None:
    assert resolve_language(name).name == expected


def test_an_unknown_language_names_the_valid_ones() -> None:
    with pytest.raises(UnknownLanguage) as raised:
        resolve_language("cobol")
    assert isinstance(raised.value, ValueError)
    assert raised.value.language == "cobol"
    assert {"python", "cpp", "java", "javascript"} <= set(raised.value.valid)
    assert "cobol" in str(raised.value)


def test_a_language_without_its_toolchain_is_unknown_there() -> None:
    with pytest.raises(UnknownLanguage) as raised:
        resolve_language("java", available=["python", "cpp"])
    assert "java" not in raised.value.valid
    assert resolve_language("c++", available=["python", "cpp"]).name == "cpp"


@pytest.mark.parametrize(
    ("tools", "expected"),
    [
        pytest.param({"python3"}, ("python",), id="python_only"),
        pytest.param({"python3", "g++", "gcc"}, ("python", "cpp", "c"), id="with_gcc"),
        pytest.param({"javac"}, (), id="javac_without_java"),
        pytest.param(set(), (), id="nothing"),
    ],
)
def test_available_languages_follow_the_tools(tools: set[str], expected: tuple[str, ...]) -> None:
    assert available_languages(lambda tool: tool in tools) == expected


def test_the_jvm_heap_follows_the_memory_limit() -> None:
    assert "-Xmx256m" in LANGUAGES["java"].run_argv(256)
    assert "--max-old-space-size=300" in LANGUAGES["javascript"].run_argv(300)


PROGRAMS: dict[str, dict[str, str]] = {
    "python": {
        "hello": "print('hello, world')\n",
        "echo": "import sys\nfor line in sys.stdin:\n    print(line.rstrip('\\n'))\n",
        "broken": "x = undeclared_name +\n",
    },
    "cpp": {
        "hello": '#include <iostream>\nint main() { std::cout << "hello, world" << std::endl; }\n',
        "echo": "#include <iostream>\n#include <string>\n"
        "int main() { std::string s; while (std::getline(std::cin, s)) std::cout << s << '\\n'; }\n",
        "broken": "int main() { return undeclared_name; }\n",
    },
    "c": {
        "hello": '#include <stdio.h>\nint main(void) { puts("hello, world"); return 0; }\n',
        "echo": "#include <stdio.h>\nint main(void) { char b[4096]; while (fgets(b, sizeof b, stdin)) "
        "fputs(b, stdout); return 0; }\n",
        "broken": "int main(void) { return undeclared_name; }\n",
    },
    "java": {
        "hello": 'public class Main { public static void main(String[] a) { System.out.println("hello, world"); } }\n',
        "echo": "import java.io.*;\npublic class Main { public static void main(String[] a) throws IOException {\n"
        'BufferedReader r = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));\n'
        'PrintStream out = new PrintStream(System.out, true, "UTF-8");\n'
        "for (String s; (s = r.readLine()) != null; ) out.println(s); } }\n",
        "broken": "public class Main { public static void main(String[] a) { int x = undeclared_name; } }\n",
    },
    "javascript": {
        "hello": "console.log('hello, world');\n",
        "echo": "const lines = require('fs').readFileSync(0, 'utf8').split('\\n');\n"
        "if (lines[lines.length - 1] === '') lines.pop();\nfor (const l of lines) console.log(l);\n",
        "broken": "function f() { return undeclared_name +; }\n",
    },
    "go": {
        "hello": 'package main\nimport "fmt"\nfunc main() { fmt.Println("hello, world") }\n',
        "echo": 'package main\nimport ("bufio"; "fmt"; "os")\n'
        "func main() { s := bufio.NewScanner(os.Stdin); for s.Scan() { fmt.Println(s.Text()) } }\n",
        "broken": "package main\nfunc main() { undeclared_name() }\n",
    },
    "rust": {
        "hello": 'fn main() { println!("hello, world"); }\n',
        "echo": "use std::io::BufRead;\nfn main() { for l in std::io::stdin().lock().lines() "
        '{ println!("{}", l.unwrap()); } }\n',
        "broken": "fn main() { undeclared_name(); }\n",
    },
}
LIMITS = Limits(timeout_s=10.0, compile_timeout_s=60.0, memory_mb=256)
ECHO_INPUTS = ["one line\n", "two\nlines with ünïcødé ✓\n", ""]


def _require(sandbox: Sandbox, language: str) -> None:
    available: tuple[str, ...] = getattr(sandbox, "languages", ())
    if language not in available:
        pytest.skip(f"no {language} toolchain in this {sandbox.name} sandbox (has: {', '.join(available)})")


@pytest.mark.parametrize("language", list(PROGRAMS))
async def test_hello_world_and_stdin_echo(sandbox: Sandbox, language: str) -> None:
    _require(sandbox, language)
    programs = PROGRAMS[language]
    hello = await sandbox.run(Job(language=language, source=programs["hello"], runs=[Run()], limits=LIMITS))
    assert [(run.status, run.stdout) for run in hello.runs] == [(RunStatus.OK, "hello, world\n")], hello
    runs = [Run(stdin=text) for text in ECHO_INPUTS]
    echo = await sandbox.run(Job(language=language, source=programs["echo"], runs=runs, limits=LIMITS))
    assert echo.compile is None or echo.compile.status == RunStatus.OK, echo.compile
    assert [(run.status, run.stdout) for run in echo.runs] == [(RunStatus.OK, text) for text in ECHO_INPUTS], echo


@pytest.mark.parametrize("language", [name for name, spec in LANGUAGES.items() if spec.compile is not None])
async def test_a_compile_error_carries_the_compilers_message(sandbox: Sandbox, language: str) -> None:
    _require(sandbox, language)
    job = Job(language=language, source=PROGRAMS[language]["broken"], runs=[Run(), Run()], limits=LIMITS)
    result = await sandbox.run(job)
    assert result.compile is not None
    assert result.compile.status == RunStatus.CE
    assert "undeclared_name" in result.compile.stdout + result.compile.stderr
    assert result.runs == []
