"""The options of a run — `boltzrl train`'s command line — as one flat dataclass, and the one parser for them.

A run is configured by the CLI's own options (CLI_OPTIONS), the training loop's TrainConfig and the algorithm's
config dataclass, all flat on one command line, so their field names must never clash. Every way a value enters a
config goes through tyro on that dataclass, so types, tuples, Optional and bool read the same everywhere:

    boltzrl train --critic-lr 1e-3              parse_args
    boltzrl sweep --set critic_lr=1e-3,3e-4     parse_text, once per value: tyro on ["--critic-lr=1e-3"]
    config.json (restore, --resume, eval)       configs_from_values: each value as its tokens, then tyro
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import functools
import inspect
import io
import re
import sys
import textwrap
import typing
from typing import Annotated, Any, Optional

import tyro

from boltzrl.training.config import TrainConfig, check_field_ranges

CLI_OPTIONS: dict[str, tuple[Any, Any, str]] = {
    "algo": (str, "sac", "Algorithm (see `boltzrl list`)."),
    "preset": (Optional[str], None, "Named preset of the algorithm."),
    "out": (Optional[str], None, "Run folder (default: runs/ALGO-ENV-seedS-TIME)."),
    "resume": (bool, False, "Continue the run in --out from its last checkpoint."),
    "config": (Optional[str], None, "Start a new run from a saved run's config.json (or its folder); flags given "
                                    "override its values."),
}
"""Options of `boltzrl train` itself: name → (type, default, help)."""


class OptionError(ValueError):
    """A value that the parser cannot read; its message is one line."""


def field_docs(cls) -> dict[str, str]:
    """Docstrings written under dataclass fields (the convention used by every config in this package)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body
        for node, nxt in zip(body, body[1:]):
            if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                docs[node.target.id] = str(nxt.value.value)
    return docs


def clashes(agent_cls) -> set[str]:
    """Names that the agent config shares with TrainConfig or with the CLI's own options."""
    agent = {f.name for f in dataclasses.fields(agent_cls)}
    return agent & ({f.name for f in dataclasses.fields(TrainConfig)} | set(CLI_OPTIONS))


@functools.cache
def args_class(agent_cls) -> type:
    """The flat frozen dataclass of every option of `boltzrl train` for this agent config, with the classes'
    defaults and field docstrings as help; built once per config class."""
    if clash := clashes(agent_cls):
        raise TypeError(f"{agent_cls.__name__} reuses option names of the training loop or the CLI: "
                        f"{', '.join(sorted(clash))}; rename them.")
    fields = [(name, Annotated[tp, tyro.conf.arg(help=text)], dataclasses.field(default=default))
              for name, (tp, default, text) in CLI_OPTIONS.items()]
    for cls in (TrainConfig, agent_cls):
        docs, hints = field_docs(cls), typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            spec = dataclasses.field(default=f.default, default_factory=f.default_factory)
            fields.append((f.name, Annotated[hints[f.name], tyro.conf.arg(help=docs.get(f.name, ""))], spec))
    return dataclasses.make_dataclass("TrainArgs", fields, frozen=True)


def annotation(agent_cls, name: str):
    """The type of option `name` (a CLI, TrainConfig or agent field), or None if there is no such option."""
    if name in CLI_OPTIONS:
        return CLI_OPTIONS[name][0]
    return {**typing.get_type_hints(TrainConfig), **typing.get_type_hints(agent_cls)}.get(name)


def tokens(name: str, value: Any) -> list[str]:
    """The command-line tokens that set option `name` to `value` (the inverse of parsing)."""
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return [flag] if value else ["--no-" + name.replace("_", "-")]
    if isinstance(value, (tuple, list)):
        return [flag, *(str(v) for v in value)]
    return [f"{flag}={value}"]  # one token, so values such as -1e-05 are never read as flags


def parse_quietly(parse: typing.Callable[[], Any]):
    """Run a tyro parser; turn its boxed error message into one line (help output is left alone)."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return parse()
    except SystemExit as exc:
        if not exc.code:
            sys.stderr.write(captured.getvalue())
            raise
        border = r"[│╭╰╮╯─|+\-\s]+"  # rich draws the box with Unicode or ASCII characters
        lines = [re.sub(f"^{border}|{border}$", "", line) for line in captured.getvalue().splitlines()]
        lines = [line for line in lines if line and not line.startswith(("For full helptext", "Argument helptext"))]
        raise OptionError(lines[1] if len(lines) > 1 else "invalid arguments; see boltzrl train --help") from None


def parse_args(agent_cls, argv: list[str], defaults: dict[str, Any] | None = None, prog: str = "boltzrl train"):
    """Parse a command line into the args dataclass; `defaults` (any subset of the options) replace the classes'
    defaults, e.g. a preset's or a saved run's values."""
    cls = args_class(agent_cls)
    default = cls(**defaults) if defaults else None
    return parse_quietly(lambda: tyro.cli(cls, args=argv, prog=prog, default=default))


def split(agent_cls, args) -> tuple[Any, TrainConfig]:
    """(agent config, train config) from parsed args; agent fields out of their generic ranges (see
    `check_field_ranges`) are refused in one sentence."""
    train = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    agent = agent_cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(agent_cls)})
    check_field_ranges(agent)
    return agent, train


def text_tokens(name: str, text: str, tp) -> list[str]:
    """Tokens for option `name` from a one-token text such as `boltzrl sweep --set` gives: a tuple as 64x64 or
    '64 64', a bool as true/false (also yes/no, 1/0), anything else as the text itself."""
    flag = "--" + name.replace("_", "-")
    text = text.strip()
    if typing.get_origin(tp) is tuple:
        return [flag, *(text.split() if " " in text else text.split("x") if re.fullmatch(r"\d+(x\d+)+", text)
                        else [text])]
    if tp is bool and text.lower() in ("true", "yes", "1", "false", "no", "0"):
        return tokens(name, text.lower() in ("true", "yes", "1"))
    return [f"{flag}={text}"]


def parse_text(agent_cls, name: str, text: str) -> Any:
    """The value of option `name` read from `text` by the same parser as `boltzrl train --name text`."""
    return getattr(parse_args(agent_cls, text_tokens(name, text, annotation(agent_cls, name))), name)


def configs_from_values(agent_cls, agent: dict[str, Any], train: dict[str, Any]) -> tuple[Any, TrainConfig]:
    """(agent config, train config) from plain values (config.json's, a preset's), each read by the command-line
    parser from its tokens, so a restored config has exactly the types `boltzrl train` gives; fields left out
    take their defaults."""
    for section, cls, values in (("agent", agent_cls, agent), ("train", TrainConfig, train)):
        names = {f.name for f in dataclasses.fields(cls)}
        if unknown := sorted(set(values) - names):
            raise OptionError(f"{cls.__name__} has no field(s) {', '.join(unknown)} (in the {section} settings); "
                              f"valid fields: {', '.join(sorted(names))}.")
    argv = [token for name, value in {**train, **agent}.items() for token in tokens(name, value)]
    return split(agent_cls, parse_args(agent_cls, argv))
