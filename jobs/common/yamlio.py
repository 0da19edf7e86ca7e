"""Reading YAML that people write (mappings, specs, settings, segments) without silent surprises.

PyYAML keeps the last of two equal keys in a mapping without a word, so a mapping that names
`phone:` twice quietly loses the first line. Every YAML file the platform reads goes through
`load_yaml`, which refuses a duplicated key and says where both are.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from jobs.common.errors import CdpError


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that raises on a key given twice in one mapping."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[object, int] = {}
    for key_node, _value in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: SafeLoader reports it below
            continue
        line = key_node.start_mark.line + 1
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key {key!r} appears twice in one mapping (lines {first} and {line}); keep one",
                key_node.start_mark,
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def parse_yaml(text: str, where: str) -> object:
    """Parse YAML text; CdpError naming `where` (and the line) when it is invalid or has a
    duplicated key."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise CdpError(f"{where}: not valid YAML{at}: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise CdpError(f"{where}: not valid YAML ({' '.join(str(exc).split())})") from exc


def load_yaml(path: Path, where: str | None = None) -> object:
    """Read and parse a UTF-8 YAML file (see `parse_yaml`)."""
    where = where or str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CdpError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    return parse_yaml(text, where)
