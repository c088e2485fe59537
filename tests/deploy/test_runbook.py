"""Every command in docs/RUNBOOK.md must exist: `harvey` sub-commands and options (resolved with
click), `make` targets and variables, and well-formed `kn`/`kubectl`/PostgreSQL invocations."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs" / "RUNBOOK.md"
PROGRAMS = {"harvey", "make", "kn", "kubectl", "psql", "pg_dump", "pg_restore"}
KN_FLAGS = {
    ("service", "update"): {"--traffic", "--tag", "--untag", "-n", "--scale-min"},
    ("service", "list"): {"-n"},
    ("revision", "list"): {"-s", "-n"},
}
KUBECTL_VERBS = {"get", "describe", "logs", "apply", "wait", "kustomize", "create", "delete", "patch"}
PG_FLAGS = {
    "psql": {"-c"},
    "pg_dump": {"--format", "--no-owner", "--file"},
    "pg_restore": {"--list", "--no-owner", "--dbname"},
}


def runbook_commands() -> list[list[str]]:
    text = RUNBOOK.read_text()
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        lines += [line.strip() for line in block.splitlines() if line.strip()]
    lines += re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    commands = [shlex.split(line) for line in lines]
    return [c for c in commands if len(c) > 1 and c[0] in PROGRAMS]


COMMANDS = runbook_commands()


def ids(command: list[str]) -> str:
    return " ".join(command)[:80]


def test_runbook_has_commands() -> None:
    assert {c[0] for c in COMMANDS} == PROGRAMS


@pytest.mark.parametrize("command", [c for c in COMMANDS if c[0] == "harvey"], ids=ids)
def test_harvey_command_exists(command: list[str]) -> None:
    from harvey.cli import main

    cmd: click.Command = main
    path = ["harvey"]
    args = command[1:]
    while isinstance(cmd, click.Group) and args and not args[0].startswith("-"):
        name = args.pop(0)
        sub = cmd.get_command(click.Context(cmd), name)
        assert sub is not None, f"`{' '.join(path)}` has no sub-command {name!r}"
        cmd, path = sub, [*path, name]
    assert not isinstance(cmd, click.Group), f"`{' '.join(path)}` needs a sub-command"
    known = {opt for param in cmd.params for opt in (*param.opts, *param.secondary_opts)} | {"--help"}
    for arg in args:
        if arg.startswith("-"):
            assert arg.split("=")[0] in known, f"`{' '.join(path)}` has no option {arg}"


def make_targets_and_variables() -> tuple[set[str], set[str]]:
    targets, variables = set(), set()
    for path in [ROOT / "Makefile", *sorted((ROOT / "mk").glob("*.mk"))]:
        if path.exists():
            text = path.read_text()
            targets |= set(re.findall(r"^([a-zA-Z][\w.-]*)\s*:(?!=)", text, flags=re.M))
            variables |= set(re.findall(r"^([A-Z_]+)\s*[?:]?=", text, flags=re.M))
    return targets, variables


@pytest.mark.parametrize("command", [c for c in COMMANDS if c[0] == "make"], ids=ids)
def test_make_target_exists(command: list[str]) -> None:
    targets, variables = make_targets_and_variables()
    for arg in command[1:]:
        if "=" in arg:
            assert arg.split("=")[0] in variables, f"no Make variable {arg.split('=')[0]}"
        else:
            assert arg in targets, f"no Make target {arg}"


@pytest.mark.parametrize("command", [c for c in COMMANDS if c[0] == "kn"], ids=ids)
def test_kn_command_well_formed(command: list[str]) -> None:
    verb = tuple(command[1:3])
    assert verb in KN_FLAGS, f"unexpected kn command {verb}"
    args = command[3:]
    if verb == ("service", "update"):
        assert args and not args[0].startswith("-"), "the service name comes first"
        args = args[1:]
    flags = dict(zip(args[::2], args[1::2], strict=True))
    assert set(flags) <= KN_FLAGS[verb]
    traffic = [v for k, v in zip(args[::2], args[1::2], strict=True) if k == "--traffic"]
    if traffic:
        percents = []
        for value in traffic:
            ref, _, percent = value.partition("=")
            assert ref and percent.isdigit(), f"--traffic wants REF=PERCENT, got {value}"
            percents.append(int(percent))
        assert sum(percents) == 100, f"traffic must add up to 100: {traffic}"
    for key in ("--tag",):
        if key in flags:
            assert re.fullmatch(r"[@\w.-]+=[\w-]+", flags[key]), flags[key]


@pytest.mark.parametrize("command", [c for c in COMMANDS if c[0] == "kubectl"], ids=ids)
def test_kubectl_command_well_formed(command: list[str]) -> None:
    verbs = [a for a in command[1:] if not a.startswith("-") and not a.startswith("$")]
    assert verbs and verbs[0] in KUBECTL_VERBS, command


@pytest.mark.parametrize("command", [c for c in COMMANDS if c[0] in PG_FLAGS], ids=ids)
def test_postgres_command_well_formed(command: list[str]) -> None:
    flags = {a.split("=")[0] for a in command[1:] if a.startswith("-")}
    assert flags <= PG_FLAGS[command[0]], command
