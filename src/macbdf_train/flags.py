"""Command-line flags derived from dataclass fields: a setting's name, default, type, choices and help are
written once, on the field (`setting`), and `add_flags` / `values_from_args` turn the fields into argparse
flags and the parsed flags back into field values.

A field's flag is ``--`` + its name with dashes (or ``metadata["flag"]``); a bool field that defaults to
False is a switch, one that defaults to True is switched off with ``--no-NAME``; a field with a ``parse``
function takes repeatable string values that ``parse`` turns into the field's value (``--set K=V``).

Example:
    >>> import argparse
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class C:
    ...     batch_size: int = setting(16, help="samples per step")
    ...     tensorboard: bool = setting(True, help="no TensorBoard files")
    >>> p = argparse.ArgumentParser()
    >>> add_flags(p, C)
    >>> values_from_args(p.parse_args(["--batch-size", "4", "--no-tensorboard"]), C)
    {'batch_size': 4, 'tensorboard': False}
    >>> [a.help for a in p._actions[1:]]
    ['samples per step (default 16)', 'no TensorBoard files']
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import MISSING, field
from typing import Any, Callable, Iterable, Mapping

__all__ = ["setting", "add_flags", "values_from_args", "flag_name", "cli_fields"]


def setting(default: Any = MISSING, *, help: str, default_factory: Callable[[], Any] | Any = MISSING,
            flag: str | None = None, metavar: str | None = None, choices: Iterable[str] | None = None,
            parse: Callable[[list[str]], Any] | None = None, type: Callable[[str], Any] | None = None,
            default_text: str | None = None, group: str | None = None, cli: bool = True) -> Any:
    """A dataclass field that carries its command-line form: ``help`` (without the default: `add_flags`
    appends it, or ``default_text``), ``flag``, ``metavar``, ``choices``, ``type`` (else the default's
    type), ``parse`` (repeatable string values -> field value), ``group`` (flags of one group are mutually
    exclusive), ``cli=False`` (no flag: a programmatic setting only)."""
    meta = {"help": help, "flag": flag, "metavar": metavar, "choices": tuple(choices) if choices else None,
            "parse": parse, "type": type, "default_text": default_text, "group": group, "cli": cli}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    if default is MISSING:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


def flag_name(f: dataclasses.Field) -> str:
    """The flag of field ``f``: ``metadata["flag"]`` or ``--`` + the name with dashes (``--no-NAME`` for
    a bool that defaults to True)."""
    if f.metadata.get("flag"):
        return str(f.metadata["flag"])
    name = f.name.replace("_", "-")
    return f"--no-{name}" if f.default is True else f"--{name}"


def cli_fields(cls: type, names: Iterable[str] | None = None) -> list[dataclasses.Field]:
    """The fields of ``cls`` that have a flag, in field order (or in the order of ``names``)."""
    by_name = {f.name: f for f in dataclasses.fields(cls) if "help" in f.metadata and f.metadata.get("cli", True)}
    if names is None:
        return list(by_name.values())
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise KeyError(f"{cls.__name__} has no command-line setting {', '.join(unknown)}")
    return [by_name[n] for n in names]


def _default(f: dataclasses.Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _value_type(f: dataclasses.Field, default: Any) -> Callable[[str], Any]:
    if f.metadata.get("type"):
        return f.metadata["type"]
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        return type(default)
    text = str(f.type)
    return int if "int" in text else float if "float" in text else str


def add_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type,
              names: Iterable[str] | None = None, *, defaults: Mapping[str, Any] | None = None,
              default_text: Mapping[str, str] | None = None, extra_help: Mapping[str, str] | None = None,
              required: Iterable[str] = (), exclusive: bool = True) -> None:
    """Add a flag per field of ``cls`` (all with a flag, or ``names``). ``defaults`` replaces a field's
    default for this parser (None: the setting is left to ``cls``'s default when the flag is absent),
    ``default_text`` how that default is described, ``extra_help`` a sentence appended for this command;
    ``required`` fields must be given; ``exclusive``: flags sharing a ``group`` exclude each other."""
    defaults, default_text, extra_help = dict(defaults or {}), dict(default_text or {}), dict(extra_help or {})
    required = set(required)
    groups: dict[str, Any] = {}
    for f in cli_fields(cls, names):
        meta = f.metadata
        default = defaults[f.name] if f.name in defaults else _default(f)
        text = default_text.get(f.name, meta.get("default_text"))
        kw: dict[str, Any] = {"dest": f.name}
        if isinstance(_default(f), bool):
            kw.update(action="store_false" if _default(f) else "store_true")
            if f.name in defaults:
                kw["default"] = default
        elif meta.get("parse") is not None:
            kw.update(action="append", default=[], metavar=meta.get("metavar"))
        else:
            kw.update(type=_value_type(f, default), default=default, metavar=meta.get("metavar"))
            if meta.get("choices"):
                kw["choices"] = meta["choices"]
            if f.name in required:
                kw["required"] = True
            elif text is None:   # a default of None here: the field's own default applies
                shown = default if default is not None else _default(f)
                text = None if shown is None else str(shown)
        help_text = meta["help"] + (f" (default {text})" if text is not None else "")
        if f.name in extra_help:
            help_text += "; " + extra_help[f.name]
        kw["help"] = help_text.replace("%", "%%")
        target = parser
        if exclusive and meta.get("group"):
            if meta["group"] not in groups:
                groups[meta["group"]] = parser.add_mutually_exclusive_group()
            target = groups[meta["group"]]
        target.add_argument(flag_name(f), **kw)


def values_from_args(args: argparse.Namespace, cls: type, names: Iterable[str] | None = None,
                     drop_none: bool = False) -> dict[str, Any]:
    """Field values from parsed flags (each ``parse`` applied); ``drop_none`` leaves out flags not given
    whose default is None (the setting then keeps ``cls``'s default)."""
    out: dict[str, Any] = {}
    for f in cli_fields(cls, names):
        if not hasattr(args, f.name):
            continue
        v = getattr(args, f.name)
        if f.metadata.get("parse") is not None:
            if drop_none and not v:
                continue
            v = f.metadata["parse"](v)
        if v is None and drop_none:
            continue
        out[f.name] = v
    return out
