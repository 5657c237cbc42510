"""One command-line mechanism for `train`, `evaluate` and `bench`.

A command is a frozen dataclass: its fields are the flags (`--field-name`), their attribute
docstrings the help, and tyro parses them. Before tyro sees the command line, `check_argv`
refuses a value of the wrong type or kind, an unknown option or a stray word in one
sentence that names the flag (tyro's own errors are boxed, several lines), so a typo
costs no compile and no simulator. Ranges of config fields are `config.validate`'s.
Standard library only until `parse` imports tyro.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from planet_jax.config import ConfigError


def fail(message: str, code: int = 2):
    """Print `error: MESSAGE` on stderr and exit with `code` (2: a usage error)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def _optional(kind: Any) -> Any:
    """`X | None` -> X; anything else unchanged."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return kind


def flag_kinds(groups: Iterable[type]) -> dict[str, tuple[str, Any]]:
    """`--flag-name` -> (field name, its annotation, `X | None` read as X) for every field
    of the dataclasses `groups` that is not itself a dataclass."""
    kinds: dict[str, tuple[str, Any]] = {}
    for cls in groups:
        for name, annotation in typing.get_type_hints(cls).items():
            if not dataclasses.is_dataclass(annotation):
                kinds["--" + name.replace("_", "-")] = (name, _optional(annotation))
    return kinds


def _accepts(kind: Any) -> str:
    if typing.get_origin(kind) is Literal:
        return "one of " + ", ".join(typing.get_args(kind))
    return {int: "an integer", float: "a number", str: "a string"}.get(kind, str(kind))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_value(flag: str, kind: Any, raw: str, lower: int | None) -> None:
    if typing.get_origin(kind) is Literal:
        choices = typing.get_args(kind)
        if raw not in choices:
            raise ConfigError(f"{flag} must be one of {', '.join(choices)}, got {raw!r}.")
    elif kind in (int, float):
        try:
            value = kind(raw)
        except ValueError:
            raise ConfigError(f"{flag} expects {_accepts(kind)}, got {raw!r}.") from None
        if not math.isfinite(value):
            raise ConfigError(f"{flag} expects a finite number, got {raw!r}.")
        if lower is not None and value < lower:
            raise ConfigError(f"{flag} must be an integer >= {lower}, got {value}.")


def check_argv(
    argv: Sequence[str],
    groups: Iterable[type],
    *,
    bounds: dict[str, int] | None = None,
    positional: Sequence[tuple[str, Any]] = (),
) -> None:
    """Refuse, in one sentence naming the flag and what it accepts, any value of the wrong
    type or kind, any unknown option and any stray word, before tyro sees `argv`.

    groups: the dataclasses whose fields are the flags; bounds: lower bounds of the
    command's own integer flags, by field name; positional: (name, annotation) of the
    words that may come before or between the flags, in order.
    """
    if any(a in ("-h", "--help") for a in argv):
        return
    kinds = flag_kinds(groups)
    bounds = bounds or {}
    words = list(positional)
    seen = set()
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if not token.startswith("--"):
            if not words:
                raise ConfigError(f"unexpected argument {token!r}: every value follows its --flag (see --help).")
            name, kind = words.pop(0)
            _check_value(name, kind, token, None)
            continue
        flag, has_value, inline = token.partition("=")
        if flag.startswith("--no-") and "--" + flag[5:] in kinds and kinds["--" + flag[5:]][1] is bool:
            if has_value:
                raise ConfigError(f"{flag} takes no value, got {inline!r}.")
            continue
        if flag not in kinds:
            raise ConfigError(f"unknown option {flag}: see --help for the options.")
        name, kind = kinds[flag]
        seen.add(name)
        if kind is bool:
            if has_value or (i < len(argv) and not argv[i].startswith("--") and not words):
                given = inline if has_value else argv[i]
                raise ConfigError(
                    f"{flag} is a switch: give {flag} or --no-{flag[2:]}, without a value (got {given!r})."
                )
            continue
        if typing.get_origin(kind) is tuple:  # --flag V1 V2 ...: every token up to the next flag
            item = typing.get_args(kind)[0]
            values = [inline] if has_value else []
            while i < len(argv) and not argv[i].startswith("--"):
                values.append(argv[i])
                i += 1
            for raw in values:
                _check_value(flag, item, raw, bounds.get(name))
            continue
        if has_value:
            raw = inline
        elif i < len(argv) and not (argv[i].startswith("--") and not _is_number(argv[i])):
            raw = argv[i]
            i += 1
        else:
            raise ConfigError(f"{flag} needs a value ({_accepts(kind)}).")
        _check_value(flag, kind, raw, bounds.get(name))
    for cls in groups:
        for f in dataclasses.fields(cls):
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            hint = typing.get_type_hints(cls)[f.name]
            if not required or f.name in seen or dataclasses.is_dataclass(hint):
                continue
            given = [n for n, _ in positional if n == f.name]
            if given and all(n != f.name for n, _ in words):
                continue
            kind = _optional(hint)
            what = f.name if given else "--" + f.name.replace("_", "-")
            raise ConfigError(f"{what} is required ({_accepts(kind)}; see --help).")


def parse(
    cls: type,
    argv: Sequence[str] | None,
    *,
    prog: str,
    default: Any = None,
    groups: Iterable[type] = (),
    bounds: dict[str, int] | None = None,
    positional: Sequence[tuple[str, Any]] = (),
) -> Any:
    """`check_argv`, then tyro: an instance of the dataclass `cls` from `argv` (default:
    sys.argv[1:]). groups: further dataclasses whose fields are flags (nested fields of
    `cls`, whose prefixes are omitted); a bad command line exits 2 with one sentence."""
    import tyro

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        check_argv(argv, [cls, *groups], bounds=bounds, positional=positional)
    except ConfigError as exc:
        fail(str(exc))
    return tyro.cli(cls, default=default, args=argv, prog=prog, config=(tyro.conf.OmitArgPrefixes,))
