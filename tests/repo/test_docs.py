"""The Markdown of this repository cannot drift from the code.

Every Markdown file in the repository (README, ARCHITECTURE, COPILOT, AI_TRACE, docs/,
benchmarks/, deploy/, ...) is read, and every name it gives is checked against the one owner of
that fact. What counts as a name of each kind:

- **path**: an inline code span that is one path-like token (letters, digits, `_ . - @ /`,
  optionally `::symbol`) with a known file extension, or with a `/` whose first segment is a
  directory of the repository; a Markdown link's target; and, in shell blocks, a word whose first
  segment is a top-level directory of the repository. A path with a `/` resolves against the
  repository root, the Markdown file's directory or the package (`src/payments_service/`, so
  `transport/error_table.py` is the module); a bare file name (`0003_merchant_scope.sql`) must
  be a file somewhere in the repository. `::name` must be defined in that file; `#anchor` must
  be a heading of the linked page. Not paths: absolute paths (`/etc/...`, a container's),
  URLs, and patterns (`*`, `<placeholder>`). Paths a command makes are in `MADE_BY_COMMANDS`.
- **variable**: any `PAYMENTS_*` or `OTEL_*` word, anywhere (prose and code). It must be declared
  in the settings spec (`config.all_variables()`), or be read by the test suite or the benchmark
  (`NOT_SERVICE_SETTINGS`), or be one the OpenTelemetry SDK reads itself (`SDK_VARIABLES`).
- **metric**: in inline code and code blocks, a word in the service's metric namespaces
  (`grpc_server_*`, `payments_*`) that is not a function call (`name(`), a Python module or a
  database object of the migrations; in ```` ```promql ```` blocks, every metric name of the
  query. It must be a name `/metrics` shows (`_total`, `_bucket`, `_sum`, `_count`, the
  family name of a histogram or gauge), from registries built as the server builds them, or a
  recording rule of `deploy/prometheus/`.
- **make target**: the words after `make` in an inline code span or a shell command that starts
  with `make`, options and `VAR=value` left out. It must be a target of Makefile or mk/*.mk.
- **Python symbol**: an inline code span that is a dotted name (`config.Settings`,
  `transport.error_table.answer_for`, `main.serve()`) whose first segment is `payments_service`
  or one of its top-level modules or packages, or a class of the package
  (`KeyRing.principal_for`): it must import and resolve. Other dotted names (span attributes
  such as `server.address`, proto names, other libraries) are not checked.

`test_a_planted_error_of_each_kind_is_reported` shows every rule failing.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
import re
import shlex
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import opentelemetry.sdk.environment_variables as otel_sdk_variables
import pytest

import payments_service
from payments_service.config import all_variables
from payments_service.gen.payments.v1 import payments_pb2 as pb
from scripts.check_dashboard import promql_metric_names
from scripts.render_docs import TABLES, stale_tables
from tests.metric_names import served_metric_names

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "src/payments_service"  # where `transport/error_table.py` and the like resolve

# Paths a doc names that are not in the repository because a command makes them.
MADE_BY_COMMANDS = {
    ".venv/": "make install creates the virtualenv",
    ".secrets/": "make compose-secrets writes the compose secret (git-ignored)",
    "benchmarks/results/": "make bench writes its JSON there (git-ignored)",
}
# Variables the docs name that the service does not read, and the file that reads each.
NOT_SERVICE_SETTINGS = {
    "PAYMENTS_TEST_DATABASE_URL": "tests/stores.py",  # the suite's PostgreSQL
    "PAYMENTS_BENCH_DATABASE_URL": "benchmarks/stores.py",  # the benchmark's PostgreSQL
}
# OpenTelemetry SDK variables the docs name that the service leaves to the SDK (the spec declares
# the ones the service reads). Keep it short: a variable the service reads belongs in the spec.
SDK_VARIABLES = {
    "OTEL_TRACES_SAMPLER",  # the benchmark traces every call with always_on
    "OTEL_RESOURCE_ATTRIBUTES",  # deployments add resource attributes to every span
}
KNOWN_EXTENSIONS = (
    ".py",
    ".md",
    ".sql",
    ".yml",
    ".yaml",
    ".toml",
    ".json",
    ".lock",
    ".sh",
    ".mk",
)
SHELL_BLOCKS = ("sh", "bash", "console", "shell")
# Programs the docs' shell blocks call that are not the project's own.
EXTERNAL = {
    "bash",
    "createdb",
    "curl",
    "docker",
    "echo",
    "export",
    "git",
    "grep",
    "grpcurl",
    "kill",
    "kubectl",
    "openssl",
    "printf",
    "python3",
    "sed",
    "tail",
    "tee",
    "tr",
    "umask",
}
# Tools of the project's virtualenv (make install), called by path.
VENV_TOOLS = {".venv/bin/pytest", ".venv/bin/python"}

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([\w+-]*)")
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)
_PATH = re.compile(r"(?P<path>[\w.@-]+(?:/[\w.@-]+)*/?)(?:::(?P<symbol>[\w.\[\]-]+))?")
_VARIABLE = re.compile(r"\b(?:PAYMENTS|OTEL)_[A-Z0-9_]*[A-Z0-9]\b")
# A metric name, not inside a recording rule's `level:metric:operations` name.
_METRIC = re.compile(r"(?<![\w:])(?:grpc_server|payments)_[a-z0-9_]*[a-z0-9]\b(?![:(]|\s*\()")
# A recording rule's name: `level:metric:operations` (Prometheus' naming convention).
_RECORDED = re.compile(r"(?<![\w:])[a-z_][a-z0-9_]*:[a-z0-9_]+:[a-z0-9_]+\b")
_DOTTED = re.compile(r"(?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)(?:\(\))?")


# -- reading Markdown -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Named:
    """A name a page gives, and the line it is on."""

    text: str
    line: int


@dataclass(frozen=True, slots=True)
class Block:
    """A fenced code block."""

    lang: str
    text: str
    line: int  # of its first line of code


@dataclass(frozen=True, slots=True)
class Page:
    name: str  # relative to the repository root
    text: str
    blocks: tuple[Block, ...]
    code: tuple[Named, ...]  # inline code spans, whitespace folded
    links: tuple[Named, ...]  # link targets
    anchors: frozenset[str]  # of its headings, as GitHub makes them

    @property
    def directory(self) -> str:
        return Path(self.name).parent.as_posix()

    @classmethod
    def parse(cls, name: str, text: str) -> Page:
        blocks: list[Block] = []
        prose: list[str] = []
        fence: tuple[str, str, int, list[str]] | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            opening = _FENCE.match(line)
            if fence is None and opening is not None:
                fence = (opening[1], opening[2].lower(), number + 1, [])
            elif (
                fence is not None
                and line.strip().startswith(fence[0])
                and not line.strip()[len(fence[0]) :].strip("`~")
            ):
                blocks.append(Block(fence[1], "\n".join(fence[3]), fence[2]))
                fence = None
            elif fence is not None:
                fence[3].append(line)
            else:
                prose.append(line)
                continue
            prose.append("")  # keep line numbers
        body = "\n".join(prose)

        def line_of(offset: int) -> int:
            return body.count("\n", 0, offset) + 1

        code = []
        for match in _CODE_SPAN.finditer(body):
            if "\n\n" not in match[2]:
                code.append(Named(" ".join(match[2].split()), line_of(match.start())))
        without_code = _CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m[0]), body)
        links = [Named(m[1], line_of(m.start())) for m in _LINK.finditer(without_code)]
        return cls(name, text, tuple(blocks), tuple(code), tuple(links), _anchors(body))

    def shell_commands(self) -> Iterator[Named]:
        """Each command of the page's shell blocks (console: the `$ ` lines only)."""
        for block in self.blocks:
            if block.lang not in SHELL_BLOCKS:
                continue
            lines = block.text.replace("\\\n", " ").splitlines()
            for offset, raw in enumerate(lines):
                if block.lang == "console" and not raw.startswith("$ "):
                    continue  # output
                command = raw.removeprefix("$ ").split("#", 1)[0].strip()
                if command:
                    yield Named(command, block.line + offset)


def _anchors(body: str) -> frozenset[str]:
    """The anchors of the page's headings: GitHub's slugs (lower case, punctuation dropped,
    spaces as hyphens, `-1`, `-2` for repeats)."""
    seen: dict[str, int] = {}
    anchors = set()
    for heading in _HEADING.findall(body):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return frozenset(anchors)


@functools.cache
def repository_files() -> frozenset[str]:
    """Every file of the repository (tracked, or new and not ignored), relative to the root."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    names = listed.stdout.decode().split("\0")
    return frozenset(name for name in names if name and (ROOT / name).exists())


@functools.cache
def repository_directories() -> frozenset[str]:
    return frozenset(
        parent.as_posix()
        for name in repository_files()
        for parent in Path(name).parents
        if parent != Path(".")
    )


def markdown_pages() -> list[Page]:
    return [
        Page.parse(name, (ROOT / name).read_text())
        for name in sorted(repository_files())
        if name.endswith(".md")
    ]


# -- paths ------------------------------------------------------------------------------------


def _resolved(path: str, page: Page) -> str | None:
    """The repository path `path` names, or None."""
    path = path.rstrip("/")
    for base in ("", page.directory, PACKAGE):
        candidate = _normalized(f"{base}/{path}")
        if candidate in repository_files() or candidate in repository_directories():
            return candidate
    if "/" not in path:  # a bare file name: anywhere in the repository
        return next((f for f in sorted(repository_files()) if Path(f).name == path), None)
    return None


def _is_path(path: str, page: Page) -> bool:
    if path.endswith(KNOWN_EXTENSIONS):
        return True
    if "/" not in path.rstrip("/"):
        return path.endswith("/")
    first = path.split("/", 1)[0]
    return any(
        _normalized(f"{base}/{first}") in repository_directories()
        for base in ("", page.directory, PACKAGE)
    )


def _defined(symbol: str, path: str) -> bool:
    """Whether the Python file at `path` defines `symbol` (its last dotted part; a test's
    parameters in brackets left out)."""
    name = symbol.split("[", 1)[0].rsplit(".", 1)[-1]
    source = (ROOT / path).read_text()
    pattern = rf"^\s*(?:async\s+def|def|class)\s+{re.escape(name)}\b|^{re.escape(name)}\s*[:=]"
    return re.search(pattern, source, re.MULTILINE) is not None


def _check_path(token: str, page: Page, line: int) -> list[str]:
    match = _PATH.fullmatch(token)
    if match is None or not _is_path(match["path"], page):
        return []
    path = match["path"]
    if any(path.startswith(prefix) for prefix in MADE_BY_COMMANDS):
        return []
    resolved = _resolved(path, page)
    if resolved is None:
        return [f"{page.name}:{line}: no such path `{path}`"]
    symbol = match["symbol"]
    if symbol and not (resolved.endswith(".py") and _defined(symbol, resolved)):
        return [f"{page.name}:{line}: `{resolved}` defines no `{symbol}`"]
    return []


def _check_link(target: str, page: Page, line: int) -> list[str]:
    if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
        return []
    path, _, anchor = target.partition("#")
    if path:
        normal = _normalized(f"{page.directory}/{path}")
        if normal not in repository_files() and normal not in repository_directories():
            return [f"{page.name}:{line}: link to a missing path `{path}`"]
        if not anchor or not normal.endswith(".md"):
            return []
        anchors = Page.parse(normal, (ROOT / normal).read_text()).anchors
    else:
        anchors = page.anchors
    if anchor and anchor not in anchors:
        return [f"{page.name}:{line}: link to a missing heading `{target}`"]
    return []


def _normalized(relative: str) -> str:
    parts: list[str] = []
    for part in relative.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/".join(parts)


def path_problems(page: Page) -> list[str]:
    problems = []
    for named in page.code:
        problems += _check_path(named.text, page, named.line)
    for named in page.links:
        problems += _check_link(named.text, page, named.line)
    top_level = {d for d in repository_directories() if "/" not in d}
    for command in page.shell_commands():
        for word in _words(command.text):
            argument = word.rsplit("=", 1)[-1]  # --config.file=deploy/...
            if argument.split("/", 1)[0] in top_level and "/" in argument:
                problems += _check_path(argument, page, command.line)
    return problems


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


_REDIRECTS = {">", ">>", "<", "&>"}


def simple_commands(command: str) -> list[list[str]]:
    """The simple commands of a shell command line, each as its words without the leading
    `VAR=value` assignments: pipelines, `&&`, `;` and `$( )` split it; a redirection's file is
    not a command."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:
        tokens = command.split()
    commands: list[list[str]] = []
    open_commands: list[list[str]] = [[]]  # the innermost last: `$( )` and `<( )` nest
    redirected = False
    for token in tokens:
        if redirected:
            redirected = False
        elif token in _REDIRECTS:
            redirected = True
        elif token.endswith("(") and set(token) <= set("$<("):
            open_commands.append([])
        elif token == ")" and len(open_commands) > 1:
            commands.append(open_commands.pop())
        elif set(token) <= set("|&;()<>"):
            commands.append(open_commands.pop())
            open_commands.append([])
        else:
            open_commands[-1].append(token)
    commands += open_commands
    found = []
    for words in commands:
        assignments = 0
        while assignments < len(words) and re.match(r"[A-Za-z_]\w*=", words[assignments]):
            assignments += 1
        if words[assignments:]:
            found.append(words[assignments:])
    return found


# -- variables --------------------------------------------------------------------------------


def declared_variables() -> set[str]:
    return {name for variable in all_variables() for name in variable.names}


def variable_problems(page: Page) -> list[str]:
    known = declared_variables() | set(NOT_SERVICE_SETTINGS) | SDK_VARIABLES
    problems = []
    for number, line in enumerate(page.text.splitlines(), start=1):
        problems += [
            f"{page.name}:{number}: `{name}` is not in the settings spec"
            for name in _VARIABLE.findall(line)
            if name not in known
        ]
    return problems


# -- metrics ----------------------------------------------------------------------------------


@functools.cache
def recording_rules() -> frozenset[str]:
    rules = set()
    for name in repository_files():
        if name.startswith("deploy/prometheus/") and name.endswith((".yml", ".yaml")):
            rules |= set(re.findall(r"^\s*-?\s*record:\s*(\S+)", (ROOT / name).read_text(), re.M))
    return frozenset(rules)


@functools.cache
def not_metrics() -> frozenset[str]:
    """Words in the metric namespaces that name something else: Python modules of the package
    and database objects of the migrations."""
    modules = {"payments_service"} | {
        Path(name).stem for name in repository_files() if name.startswith(PACKAGE)
    }
    objects = set()
    for name in repository_files():
        if name.startswith(f"{PACKAGE}/adapters/stores/migrations/") and name.endswith(".sql"):
            sql = (ROOT / name).read_text()
            objects |= set(re.findall(r"\b(?:INDEX|TABLE)\s+(?:IF NOT EXISTS\s+)?(\w+)", sql))
    return frozenset(modules | objects)


def metric_problems(page: Page, registered: frozenset[str]) -> list[str]:
    known = registered | recording_rules()
    named: list[Named] = [*page.code]
    named += [
        Named(line, block.line + offset)
        for block in page.blocks
        if block.lang != "promql"
        for offset, line in enumerate(block.text.splitlines())
    ]
    problems = []
    for text in named:
        for name in _METRIC.findall(text.text):
            if name not in known and name not in not_metrics():
                problems.append(f"{page.name}:{text.line}: metric `{name}` is not registered")
        for name in _RECORDED.findall(text.text):
            if name not in recording_rules():
                problems.append(f"{page.name}:{text.line}: no recording rule `{name}`")
    for block in page.blocks:
        if block.lang != "promql":
            continue
        for offset, line in enumerate(block.text.splitlines()):
            query = line.split("#", 1)[0]
            for name in sorted(promql_metric_names(query)):
                if name not in known:
                    what = f"no recording rule `{name}`" if ":" in name else f"metric `{name}`"
                    problems.append(f"{page.name}:{block.line + offset}: {what} is not registered")
    return problems


# -- make targets -----------------------------------------------------------------------------


@functools.cache
def make_targets() -> frozenset[str]:
    makefiles = [ROOT / "Makefile", *sorted((ROOT / "mk").glob("*.mk"))]
    pattern = re.compile(r"^([a-zA-Z0-9_-]+):", re.MULTILINE)
    return frozenset(t for f in makefiles for t in pattern.findall(f.read_text()))


def target_problems(page: Page) -> list[str]:
    named = [*page.code, *page.shell_commands()]
    return [
        f"{page.name}:{n.line}: `make {target}`: no such target"
        for n in named
        for words in simple_commands(n.text)
        if words[0] == "make"
        for target in words[1:]
        if not target.startswith("-") and "=" not in target and target not in make_targets()
    ]


# -- Python symbols ---------------------------------------------------------------------------


@functools.cache
def package_modules() -> frozenset[str]:
    """The top-level modules and packages of payments_service."""
    return frozenset(m.name for m in pkgutil.iter_modules(payments_service.__path__))


@functools.cache
def package_classes() -> dict[str, tuple[type, ...]]:
    """Every class defined in payments_service (not in its generated code), by name."""
    classes: dict[str, list[type]] = {}
    for module_info in pkgutil.walk_packages(payments_service.__path__, "payments_service."):
        if ".gen" in module_info.name or module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and value.__module__ == module.__name__:
                classes.setdefault(name, []).append(value)
    return {name: tuple(found) for name, found in classes.items()}


def _has(owner: Any, name: str) -> bool:
    if hasattr(owner, name):
        return True
    return inspect.isclass(owner) and (
        name in getattr(owner, "__dataclass_fields__", {})
        or name in getattr(owner, "__annotations__", {})
    )


def _resolves(dotted: str) -> bool | None:
    """Whether a project symbol resolves; None when `dotted` is not one."""
    parts = dotted.split(".")
    if parts[0] == "payments_service":
        parts = parts[1:]
    elif parts[0] in package_classes():
        return any(_attribute_path(c, parts[1:]) for c in package_classes()[parts[0]])
    elif parts[0] not in package_modules():
        return None
    for split in range(len(parts), 0, -1):
        module_name = ".".join(["payments_service", *parts[:split]])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        return _attribute_path(module, parts[split:])
    return False


def _attribute_path(owner: Any, names: list[str]) -> bool:
    for name in names:
        if not _has(owner, name):
            return False
        owner = getattr(owner, name, None)
    return True


def symbol_problems(page: Page) -> list[str]:
    problems = []
    for named in page.code:
        match = _DOTTED.fullmatch(named.text)
        if match is None or named.text.endswith(KNOWN_EXTENSIONS):
            continue
        if _resolves(match["name"]) is False:
            problems.append(f"{page.name}:{named.line}: `{named.text}` does not resolve")
    return problems


# -- commands ---------------------------------------------------------------------------------


def console_scripts() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project["scripts"])


def command_problems(page: Page) -> list[str]:
    known = console_scripts() | EXTERNAL | VENV_TOOLS | {"make"}
    return [
        f"{page.name}:{command.line}: unknown command `{words[0]}`"
        for command in page.shell_commands()
        for words in simple_commands(command.text)
        if words[0] not in known
    ]


# -- the tests --------------------------------------------------------------------------------

PAGES = markdown_pages()
README = (ROOT / "README.md").read_text()
CHECKS: dict[str, Callable[[Page], list[str]]] = {
    "paths": path_problems,
    "variables": variable_problems,
    "make targets": target_problems,
    "Python symbols": symbol_problems,
    "commands": command_problems,
}


def test_every_markdown_file_of_the_repository_is_checked() -> None:
    names = {page.name for page in PAGES}
    expected = {"README.md", "ARCHITECTURE.md", "COPILOT.md", "AI_TRACE.md"}
    expected |= {"benchmarks/README.md", "docs/limits.md", "docs/storage.md"}
    assert expected <= names
    assert {name for name in names if name.startswith("docs/")} == {
        path.relative_to(ROOT).as_posix() for path in (ROOT / "docs").glob("*.md")
    }


@pytest.mark.parametrize("kind", CHECKS)
def test_every_name_the_markdown_gives_exists(kind: str) -> None:
    problems = [problem for page in PAGES for problem in CHECKS[kind](page)]
    assert problems == [], "\n".join(problems)


def test_every_metric_the_markdown_names_is_registered() -> None:
    registered = served_metric_names()
    problems = [problem for page in PAGES for problem in metric_problems(page, registered)]
    assert problems == [], "\n".join(problems)


def test_the_variables_allowed_outside_the_spec_are_real_and_not_in_it() -> None:
    for name, reader in NOT_SERVICE_SETTINGS.items():
        assert name in (ROOT / reader).read_text(), f"{reader} no longer reads {name}"
    for name in SDK_VARIABLES:
        assert hasattr(otel_sdk_variables, name), f"the OpenTelemetry SDK does not read {name}"
    listed = set(NOT_SERVICE_SETTINGS) | SDK_VARIABLES
    assert not listed & declared_variables(), "declared in the spec: drop it from the lists"


PLANTED = """\
# Planted

## A real heading

See `{path}` and [the page]({link}), set `{variable}`, watch `{metric}`, run `make {target}`,
and read `{symbol}`.

```sh
make {target}
{program} -q {path}
```

```promql
rate({metric}[5m])
```
"""
GOOD = {
    "path": "tests/repo/test_docs.py::test_a_planted_error_of_each_kind_is_reported",
    "link": "docs/limits.md#load-shedding",
    "variable": "PAYMENTS_GRPC_ADDRESS",
    "metric": "grpc_server_handled_total",
    "target": "check",
    "symbol": "transport.error_table.answer_for",
    "program": ".venv/bin/pytest",
}
PLANTED_ERRORS = [
    ("path", "tests/unit/test_proto_contract.py", "no such path `tests/unit/test_proto_contract"),
    ("path", "src/payments_service/config.py::from_env_loop", "defines no `from_env_loop`"),
    ("link", "docs/no-such-page.md", "link to a missing path `docs/no-such-page.md`"),
    ("link", "docs/limits.md#no-such-heading", "missing heading `docs/limits.md#no-such-heading`"),
    ("link", "#a-real-headin", "missing heading `#a-real-headin`"),
    (
        "variable",
        "PAYMENTS_NO_SUCH_SETTING",
        "`PAYMENTS_NO_SUCH_SETTING` is not in the settings spec",
    ),
    ("variable", "OTEL_NO_SUCH_VARIABLE", "`OTEL_NO_SUCH_VARIABLE` is not in the settings spec"),
    ("metric", "payments_no_such_metric_total", "`payments_no_such_metric_total` is not reg"),
    ("metric", "slo:sli_error:ratio_rate9h", "no recording rule `slo:sli_error:ratio_rate9h`"),
    ("target", "no-such-target", "`make no-such-target`: no such target"),
    ("symbol", "config.NoSuchSettings", "`config.NoSuchSettings` does not resolve"),
    ("symbol", "KeyRing.merchant_for", "`KeyRing.merchant_for` does not resolve"),
    ("program", "pytset", "unknown command `pytset`"),
]


def planted_problems(**names: str) -> list[str]:
    page = Page.parse("PLANTED.md", PLANTED.format(**{**GOOD, **names}))
    found = [problem for check in CHECKS.values() for problem in check(page)]
    return found + metric_problems(page, served_metric_names())


def test_the_planted_page_with_true_names_has_no_problem() -> None:
    assert planted_problems() == []


@pytest.mark.parametrize(("kind", "wrong", "reported"), PLANTED_ERRORS)
def test_a_planted_error_of_each_kind_is_reported(kind: str, wrong: str, reported: str) -> None:
    problems = planted_problems(**{kind: wrong})
    assert problems, f"a wrong {kind} went unnoticed"
    assert all(reported in problem for problem in problems), problems


def test_the_readme_is_at_most_250_lines() -> None:
    assert len(README.splitlines()) <= 250


def test_architecture_is_at_most_350_lines() -> None:
    assert len((ROOT / "ARCHITECTURE.md").read_text().splitlines()) <= 350


def test_every_rpc_the_markdown_calls_exists() -> None:
    text = "".join(page.text for page in PAGES)
    called = set(re.findall(r"\bpayments\.v1\.PaymentService/(\w+)", text))
    assert called, "the README should show calls"
    methods = {m.name for m in pb.DESCRIPTOR.services_by_name["PaymentService"].methods}
    assert called <= methods


def test_the_generated_reference_tables_are_current() -> None:
    """README's settings, docs/limits.md's limits and ARCHITECTURE.md's error table are
    rendered from the code: a changed default, limit or error row fails here until `make docs`
    rewrites them."""
    assert stale_tables() == [], "run `make docs`"


def test_a_stale_table_is_found_and_make_docs_rewrites_it(tmp_path: Path) -> None:
    for relative in TABLES:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text((ROOT / relative).read_text())
    readme = tmp_path / "README.md"
    readme.write_text(readme.read_text().replace("`[::]:50051`", "`[::]:50052`"))
    assert stale_tables(tmp_path) == ["README.md: settings"]
    assert stale_tables(tmp_path, write=True) == ["README.md: settings"]
    assert stale_tables(tmp_path) == []
    assert readme.read_text() == README
