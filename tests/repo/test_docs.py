"""The README and the topic pages in docs/ cannot drift: their commands, variables and RPCs must
exist in the repository, and the README stays short enough to read top to bottom."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.reference import GENERATED
from scripts.render_docs import stale_tables

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DOCS = {path.name: path.read_text() for path in sorted((ROOT / "docs").glob("*.md"))}
PAGES = {"README.md": README, **{f"docs/{name}": text for name, text in DOCS.items()}}
BLOCK = re.compile(r"```(sh|console|bash)\n(.*?)```", re.DOTALL)
# Tools the README may call that are not ours; each must be explained in the README.
EXTERNAL = {
    "grpcurl",
    "curl",
    "docker",
    "docker-compose",
    "git",
    "cd",
    "python3",
    "export",
    "bash",
    "kubectl",
    "openssl",
    "psql",
    "createdb",
    "cat",
    "chmod",
    "echo",
    "sha256sum",
    "kill",
    "printf",
    "mkdir",
    "ls",
    "grep",
    "rm",
    "umask",
}
# Tools of the project's virtualenv (make install), called by path.
VENV_TOOLS = {".venv/bin/pytest", ".venv/bin/python", ".venv/bin/payments-server"}


def readme_commands(text: str = README) -> list[str]:
    commands = []
    for kind, body in BLOCK.findall(text):
        lines = body.replace("\\\n", " ").splitlines()
        for raw in lines:
            if kind == "console" and not raw.startswith("$ "):
                continue  # output
            command = raw.removeprefix("$ ").split("#", 1)[0].strip()
            if command:
                commands.append(command)
    return commands


def make_targets() -> set[str]:
    makefiles = [ROOT / "Makefile", *sorted((ROOT / "mk").glob("*.mk"))]
    pattern = re.compile(r"^([a-zA-Z0-9_-]+):", re.MULTILINE)
    return {t for f in makefiles for t in pattern.findall(f.read_text())}


def console_scripts() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project["scripts"])


def test_the_readme_has_commands_to_check() -> None:
    assert len(readme_commands()) >= 10


def all_commands() -> list[tuple[str, str]]:
    return [(page, command) for page, text in PAGES.items() for command in readme_commands(text)]


@pytest.mark.parametrize(("page", "command"), all_commands())
def test_every_command_of_the_readme_and_docs_exists(page: str, command: str) -> None:
    check_command(command)


def check_command(command: str) -> None:
    words = shlex.split(command)
    program = words[0]
    if program == "make":
        targets = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        assert set(targets) <= make_targets(), f"unknown make target in {command!r}"
    elif "=" in program and program.split("=", 1)[0].isupper():  # VAR=value [command]
        if words[1:]:
            check_command(" ".join(words[1:]))
    else:
        known = console_scripts() | EXTERNAL | VENV_TOOLS
        assert program in known, f"unknown command {program!r}"


def test_the_readme_is_at_most_250_lines() -> None:
    assert len(README.splitlines()) <= 250


def test_every_rpc_the_readme_and_docs_call_exists() -> None:
    called = set(re.findall(r"\b(payments\.v1\.PaymentService)/(\w+)", "".join(PAGES.values())))
    assert called, "the README should show calls"
    methods = {m.name for m in pb.DESCRIPTOR.services_by_name["PaymentService"].methods}
    assert {method for _, method in called} <= methods


def test_every_setting_is_documented_and_every_documented_setting_exists() -> None:
    package = ROOT / "src" / "payments_service"
    code = (package / "config.py").read_text() + (package / "healthcheck.py").read_text()
    in_code = set(re.findall(r'"(PAYMENTS_[A-Z_]+)"', code))
    in_code.add("PAYMENTS_TEST_DATABASE_URL")  # read by the test suite, documented for developers
    in_readme = set(re.findall(r"`(PAYMENTS_[A-Z_]+)`", README))
    assert in_code == in_readme


def test_the_generated_reference_tables_are_current() -> None:
    """README's settings, docs/limits.md's limits and ARCHITECTURE.md's error table are
    rendered from the code: a changed default, limit or error row fails here until `make docs`
    rewrites them."""
    assert stale_tables() == [], "run `make docs`"


def test_a_stale_table_is_found_and_make_docs_rewrites_it(tmp_path: Path) -> None:
    for relative in GENERATED:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text((ROOT / relative).read_text())
    readme = tmp_path / "README.md"
    readme.write_text(readme.read_text().replace("`[::]:50051`", "`[::]:50052`"))
    assert stale_tables(tmp_path) == ["README.md: settings"]
    assert stale_tables(tmp_path, write=True) == ["README.md: settings"]
    assert stale_tables(tmp_path) == []
    assert readme.read_text() == README
