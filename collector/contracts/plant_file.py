"""Load a plant YAML file into a validated Plant, or fail with errors that name the file,
the path of the key (by id where the list items have one) and what is allowed there."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from collector.contracts.plant import Plant


class PlantConfigError(ValueError):
    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = str(path)
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{self.path}: {len(problems)} problem(s) in the plant model:\n{listing}")


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; a plant file must not."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode,
                       deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *anchor` may be overridden by the mapping's own keys
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {mark.line + 1})", mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_plant(path: Path | str) -> Plant:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlantConfigError(path, [f"cannot read the file: {exc.strerror}"]) from None
    return parse_plant(text, path)


def parse_plant(text: str, path: Path | str = "<plant>") -> Plant:
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: no code runs
    except yaml.YAMLError as exc:
        raise PlantConfigError(path, [f"not valid YAML: {exc}"]) from None
    if not isinstance(data, dict):
        raise PlantConfigError(path, ["the file must be a mapping with site, sources, areas"])
    try:
        return Plant.model_validate(data)
    except ValidationError as exc:
        raise PlantConfigError(path, [_describe(err, data) for err in exc.errors()]) from None


def _describe(err: Any, data: Any) -> str:
    loc = tuple(err["loc"])
    where = _readable_path(loc, data) or "(top level)"
    if err["type"] == "extra_forbidden":
        where = _readable_path(loc[:-1], data) or "(top level)"
        allowed = _allowed_keys(loc[:-1])
        hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        return f"{where}: unknown key {loc[-1]!r}{hint}"
    message = str(err["msg"])
    if err["type"] == "value_error" and message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    if not loc and "\n" in message:
        return message.replace("\n", "\n  - ")
    return f"{where}: {message}"


def _readable_path(loc: tuple[Any, ...], data: Any) -> str:
    """('areas', 1, 'equipment', 0, 'reduction_furnace', 'retorts') →
    areas[reduction].equipment[furnace-01].retorts, using each list item's id."""
    parts: list[str] = []
    node = data
    for step in loc:
        if isinstance(step, int):
            item = node[step] if isinstance(node, list) and 0 <= step < len(node) else None
            label = item.get("id") if isinstance(item, dict) and item.get("id") else step
            if parts:
                parts[-1] += f"[{label}]"
            else:
                parts.append(f"[{label}]")
            node = item
        elif isinstance(node, dict) and step in node:
            parts.append(str(step))
            node = node[step]
        elif isinstance(node, dict) and step in node.values():
            continue  # the tag pydantic adds for a member of a tagged union (kind, protocol)
        else:
            parts.append(str(step))
            node = None
    return ".".join(parts)


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: Any = Plant
    for step in loc:
        model = _step_into(model, step)
        if model is None:
            return []
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _step_into(annotation: Any, step: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [m for m in typing.get_args(annotation) if m is not type(None)]
            tagged = [m for m in members if _tag(m) == step]
            if tagged:
                return tagged[0]
            if len(members) != 1:
                return annotation if isinstance(step, int) else None
            annotation = members[0]
        else:
            break
    if isinstance(step, int):
        if typing.get_origin(annotation) is list:
            return typing.get_args(annotation)[0]
        return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(step)
        return field.annotation if field is not None else None
    if typing.get_origin(annotation) is dict:
        return typing.get_args(annotation)[1]
    return None


def _tag(model: Any) -> str | None:
    """The Literal value that tags a member of a discriminated union (kind, protocol)."""
    if isinstance(model, type) and issubclass(model, BaseModel):
        for field in model.model_fields.values():
            if typing.get_origin(field.annotation) is typing.Literal:
                return str(typing.get_args(field.annotation)[0])
    return None
