"""One grammar for settings: ``KEY=VALUE`` text into the typed fields of a config dataclass.

Every command line that changes a config field goes through here: ``lewm train/run --model/--train/--plan``,
``lewm eval --plan``, ``lewm policy --set``, and ``experiments/compare.py --set METHOD.KEY=VALUE`` (a method's
``Budget`` dataclass). The dataclass is the schema: its annotations give each field's type, its attribute
docstrings (the string under each field, as in :mod:`lewm_agent.config`) give the help text, and its
``__post_init__`` checks ranges and choices. This module only turns text into values of the field's type,
names unknown fields (with the closest known name) and renders the fields as help; it imports nothing of the
project, so anything may use it.

Values, by the field's annotation:

- ``bool``: ``true``/``false``, ``yes``/``no``, ``on``/``off``, ``1``/``0`` (any case);
- ``int``: ``3``, ``20_000``, or an integral ``1e5``; ``float``: ``1e-3``, ``0.5``;
- ``str``: the text as written (a JSON string such as ``"cpu"``, quotes included, is unquoted);
- ``Literal["a", "b"]``: one of the choices (the dataclass refuses others, naming them);
- ``X | None``: ``none`` or ``null`` for None, else an ``X``;
- ``list[X]`` / ``tuple[X, ...]``: comma-separated ``X`` values, or a JSON array;
- anything else (a plugin's untyped budget): JSON where it parses (``2500``, ``true``, ``[1, 2]``), else the text.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import inspect
import json
import math
import re
import textwrap
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Setting", "TRUE", "FALSE", "fields_of", "type_name", "parse_value", "split_assignment", "suggest",
           "check_name", "parse_settings", "apply_settings", "help_text"]

TRUE = ("true", "yes", "on", "1")
FALSE = ("false", "no", "off", "0")
"""The spellings of a bool value (compared in lower case)."""


@dataclass(frozen=True)
class Setting:
    """One field of a config dataclass, as the command line sees it."""

    name: str
    kind: Any
    """The field's resolved annotation (``int``, ``Literal["a", "b"]``, ``float | None``...)."""
    default: Any
    """The dataclass's default (``dataclasses.MISSING`` when the field has none)."""
    doc: str
    """The field's attribute docstring, whitespace collapsed ("" when it has none)."""

    @property
    def summary(self) -> str:
        """The doc's first sentence, with reST literals (````x````) shown as ```x```."""
        text = re.sub(r":\w+:`", "`", self.doc).replace("``", "`")  # :mod:`x` and ``x`` -> `x`
        match = re.search(r"(?<=[.!?])\s+(?=[A-Z`(])", text)
        return text[:match.start()] if match else text


@functools.lru_cache(maxsize=None)
def _attribute_docs(cls: type) -> dict[str, str]:
    """Field name -> the string literal written under it in ``cls``'s body (and its base classes')."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):  # a subclass's docs win
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):  # no source (a class made at run time, a frozen install)
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def fields_of(cls: type) -> list[Setting]:
    """The settings of dataclass ``cls`` (an instance works too), in declaration order."""
    cls = cls if isinstance(cls, type) else type(cls)
    hints = typing.get_type_hints(cls)
    docs = _attribute_docs(cls)
    out = []
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        out.append(Setting(f.name, hints.get(f.name, Any), default, docs.get(f.name, "")))
    return out


def _optional(kind: Any) -> Any:
    """``X`` of ``X | None`` / ``Optional[X]``, else None."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(kind)) == 2:
            return args[0]
    return None


def _sequence(kind: Any) -> Any:
    """The element type of ``list[X]`` / ``tuple[X, ...]``, else None."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is list and len(args) == 1:
        return args[0]
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return args[0]
    return None


def type_name(kind: Any) -> str:
    """How help text and errors name a type: ``int``, ``float``, ``bool``, ``str``, ``{a,b}``, ``int|none``..."""
    if typing.get_origin(kind) is Literal:
        return "{" + ",".join(str(c) for c in typing.get_args(kind)) + "}"
    if _optional(kind) is not None:
        return f"{type_name(_optional(kind))}|none"
    if _sequence(kind) is not None:
        return f"{type_name(_sequence(kind))},..."
    return getattr(kind, "__name__", "value") if kind in (bool, int, float, str) else "value"


def _expects(kind: Any) -> str:
    return {bool: "true or false", int: "int", float: "float"}.get(kind, type_name(kind))


def parse_value(text: str, kind: Any, where: str = "value") -> Any:
    """``text`` as a value of type ``kind`` (see the module's docstring); ValueError ``WHERE expects TYPE, got
    'TEXT'`` when it is not one. Ranges and choices are the dataclass's to check."""
    value = _parse(text.strip(), kind)
    if value is _BAD:
        raise ValueError(f"{where} expects {_expects(kind)}, got {text!r}.")
    return value


_BAD = object()
"""What a parser below returns for text that is not of its type."""


def _parse(raw: str, kind: Any) -> Any:
    if kind in _SCALARS:
        return _SCALARS[kind](raw)
    if typing.get_origin(kind) is Literal:
        return _choice(raw, typing.get_args(kind))
    if _optional(kind) is not None:
        return None if raw.lower() in ("none", "null") else _parse(raw, _optional(kind))
    if _sequence(kind) is not None:
        return _items(raw, kind)
    value = _json(raw)  # untyped: JSON where it parses, else the text
    return raw if value is _BAD else value


def _bool(raw: str) -> Any:
    low = raw.lower()
    return low in TRUE if low in TRUE or low in FALSE else _BAD


def _int(raw: str) -> Any:
    try:
        return int(raw)
    except ValueError:
        number = _float(raw)  # 1e5
        return int(number) if number is not _BAD and math.isfinite(number) and number.is_integer() else _BAD


def _float(raw: str) -> Any:
    try:
        return float(raw)
    except ValueError:
        return _BAD


def _str(raw: str) -> str:
    value = _json(raw) if raw.startswith('"') else _BAD  # a JSON string: unquoted
    return value if isinstance(value, str) else raw


def _choice(raw: str, choices: tuple) -> Any:
    """The choice ``raw`` names (any case), in the choice's own type; other text is left for the dataclass to refuse
    by name, with its choices."""
    for choice in choices:
        if str(choice).lower() == raw.lower():
            return choice
    return _str(raw)


def _items(raw: str, kind: Any) -> Any:
    """``list[X]`` / ``tuple[X, ...]`` from comma-separated text or a JSON array."""
    items = _json(raw) if raw.startswith("[") else [s for s in raw.split(",") if s.strip()]
    if not isinstance(items, list):
        return _BAD
    values = [_parse(v.strip() if isinstance(v, str) else json.dumps(v), _sequence(kind)) for v in items]
    if any(v is _BAD for v in values):
        return _BAD
    return tuple(values) if typing.get_origin(kind) is tuple else values


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return _BAD


_SCALARS = {bool: _bool, int: _int, float: _float, str: _str}


def split_assignment(item: str, example: str = "lr=1e-3") -> tuple[str, str]:
    """``"KEY=VALUE"`` -> ``("KEY", "VALUE")``; ValueError naming the item and an ``example`` otherwise."""
    key, eq, value = item.partition("=")
    if not eq or not key.strip():
        raise ValueError(f"{item!r} is not KEY=VALUE (e.g. {example}).")
    return key.strip(), value


def suggest(name: str, known: list[str]) -> str:
    """``did you mean 'X'?`` for the names of ``known`` closest to ``name`` (:func:`difflib.get_close_matches`, or a
    known name that ``name`` starts with), else the list of ``known`` names."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    close += [k for k in known if k not in close and len(k) > 1 and name.startswith(k)]
    if close:
        return f"did you mean {' or '.join(repr(c) for c in close[:3])}?"
    return f"known: {', '.join(known)}." if known else "it takes none."


def check_name(cls: type, key: str, owner: str | None = None) -> Setting:
    """The setting ``key`` of dataclass ``cls``, or ValueError ``OWNER has no field 'KEY'; did you mean ...?``
    (:func:`suggest`). The one check of field names: command lines, budgets and configs read from files."""
    settings = {s.name: s for s in fields_of(cls)}
    if key in settings:
        return settings[key]
    owner = owner or (cls if isinstance(cls, type) else type(cls)).__name__
    raise ValueError(f"{owner} has no field {key!r}; {suggest(key, list(settings))}")


def parse_settings(cls: type, items: list[str] | None, owner: str | None = None) -> dict[str, Any]:
    """``["lr=1e-3", "bf16=off"]`` -> ``{"lr": 0.001, "bf16": False}``, typed by the fields of dataclass ``cls``;
    ValueError for an item that is not KEY=VALUE, an unknown field or a value of the wrong type (the later of
    two settings of one field wins)."""
    owner = owner or (cls if isinstance(cls, type) else type(cls)).__name__
    out: dict[str, Any] = {}
    for item in items or []:
        key, text = split_assignment(item)
        setting = check_name(cls, key, owner)
        out[key] = parse_value(text, setting.kind, f"{owner}.{key}")
    return out


def apply_settings(cfg: Any, items: list[str] | None, flag: str = "") -> Any:
    """A copy of dataclass instance ``cfg`` with ``items`` (``KEY=VALUE`` texts) applied one by one, each checked
    by the dataclass as it is applied (its ``__post_init__``). A ValueError names the item as given: ``FLAG ITEM:
    ...``, or the item's ``typed`` attribute where it has one (an alias flag's item: ``--steps 0: ...``); ``cfg``
    itself is not changed."""
    for item in items or []:
        try:
            cfg = dataclasses.replace(cfg, **parse_settings(type(cfg), [item]))
        except ValueError as e:
            raise ValueError(f"{getattr(item, 'typed', f'{flag} {item}'.strip())}: {e}") from None
    return cfg


def help_text(cls: Any, title: str, defaults: Any = None, width: int = 100) -> str:
    """The fields of dataclass ``cls`` under ``title``, one per entry: ``name=TYPE`` and the doc's first sentence,
    with the value of ``defaults`` (an instance; default: the dataclass's defaults; False: none shown)."""
    lines = [title]
    settings = fields_of(cls)
    column = min(30, 2 + max(len(f"{s.name}={type_name(s.kind)}") for s in settings) + 2)
    for s in settings:
        head = f"  {s.name}={type_name(s.kind)}"
        value = s.default if defaults is None else None if defaults is False else getattr(defaults, s.name)
        shown = defaults is not False and value is not dataclasses.MISSING
        body = " ".join(part for part in (s.summary, f"[{_show(value)}]" if shown else "") if part)
        if len(head) >= column:  # a long name: its doc starts on the next line
            lines.append(head)
            head = ""
        lines.append(textwrap.fill(body, width, initial_indent=head.ljust(column), subsequent_indent=" " * column,
                                   break_on_hyphens=False))
    return "\n".join(lines)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    return str(value)
