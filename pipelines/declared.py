"""Reading a declaration file (YAML checked against a pydantic schema) the same way for every
file a clinic edits (rules/response_rules.yaml, rules/instruments.yaml): a violation names the
key and its line, and every violation is listed at once, before any work."""

from __future__ import annotations

import difflib
import typing
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

# libyaml's parser where PyYAML was built with it (the wheels are): the declarations are read
# several times a run, and the pure-Python parser made that seconds.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str):
    """A YAML document (safe types only), parsed by libyaml when available."""
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader


def yaml_problem(error: yaml.YAMLError) -> str:
    """A YAML error in one line, with the line and column it was found at."""
    mark = getattr(error, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    what = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    return f"{where}{what}" + (f" ({context})" if context else "")


def field_names(schema: type[BaseModel]) -> set[str]:
    """Every key the schema and the models inside it name (fields and aliases): what a key the
    schema does not know was probably meant to be."""
    names, seen, todo = set(), set(), [schema]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            names.update(n for n in (name, field.alias) if n)
            types = [field.annotation]
            while types:
                t = types.pop()
                if isinstance(t, type) and issubclass(t, BaseModel):
                    todo.append(t)
                types.extend(typing.get_args(t))
    return names


def declared_text(path: Path, what: str, error: type[Exception]) -> str:
    """A declaration file's text; `error` when it is not UTF-8, naming the file and the byte."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as problem:
        raise error(f"{path}: the {what} is not UTF-8 text (byte {problem.start + 1}); save it as UTF-8") from None


def line_of(root: yaml.Node, loc: tuple) -> int | None:
    """The line (1-based) of the YAML node at a pydantic error location."""
    node, line = root, root.start_mark.line + 1
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == str(key)]
            if not match:
                break
            node = match[0][1]
            line = match[0][0].start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def load_checked(path: Path, schema: type[BaseModel], error: type[Exception], what: str,
                 context: dict | None = None, wrap: str | None = None) -> dict:
    """The file as a dict once `schema` accepts it; else `error` naming each key and line.
    `wrap` validates the document as the value of that one key (a file that is a mapping of
    names, such as the instrument registry)."""
    path = Path(path)
    try:
        text = declared_text(path, what, error)
    except OSError as problem:
        raise error(f"cannot read the {what} {path}: {problem.strerror or problem}") from None
    try:
        doc = load_yaml(text)
    except yaml.YAMLError as problem:
        raise error(f"{path} is not valid YAML: {yaml_problem(problem)}") from None
    if not isinstance(doc, dict):
        raise error(f"{path}: the {what} must be a mapping of keys")
    try:
        schema.model_validate({wrap: doc} if wrap else doc, context=context or {})
    except ValidationError as invalid:
        root = yaml.compose(text, Loader=_LOADER)  # the nodes' lines, only to say where
        lines = []
        for e in invalid.errors(include_url=False):
            loc = tuple(x for x in e["loc"] if x not in ("function-after",))[1 if wrap else 0:]
            key = ".".join(str(x) for x in loc) or "(top level)"
            message = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden" and loc:
                near = difflib.get_close_matches(str(loc[-1]), field_names(schema), n=1, cutoff=0.75)
                message += f" (did you mean {near[0]}?)" if near else ""
            lines.append(f"  {path}, line {line_of(root, loc)}: {key}: {message}")
        raise error(f"{path} breaks {len(lines)} rule(s) of the {what}'s schema; nothing was run:\n"
                    + "\n".join(lines)) from None
    return doc
