"""Generate the sample configuration file and the reference page from the schema."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import yaml

from appliance.config.loader import resolved, schema


def sample_yaml() -> str:
    """A complete, commented YAML configuration holding every key's default value: loading it gives
    the same configuration as an empty file. Other example values, and example entries of the lists
    that are empty by default, are in comments."""
    root = schema()
    lines = comment_lines(root["description"], indent="")
    lines.append("")
    lines += object_lines(root, indent="", example=False)
    return "\n".join(lines) + "\n"


def object_lines(node: dict[str, Any], indent: str, example: bool) -> list[str]:
    """Each key of an object node: its description as comments, then its value (`example`: the
    example values, else the defaults)."""
    lines: list[str] = []
    for name, reference in resolved(node).get("properties", {}).items():
        property_schema = resolved(reference)
        if not indent and lines:
            lines.append("")  # a blank line between sections
        lines += comment_lines(property_schema.get("description", ""), indent)
        lines += value_lines(name, property_schema, indent, example)
    return lines


def value_lines(name: str, node: dict[str, Any], indent: str, example: bool) -> list[str]:
    """The YAML lines of one key: a nested object, a list of objects (empty by default, with a
    commented example entry), or a value with its other examples in a comment."""
    if node.get("type") == "array" and "$ref" in node.get("items", {}):
        node = {**node, "items": resolved(node["items"])}
    if node.get("type") == "object":
        return [f"{indent}{name}:", *object_lines(node, indent + "  ", example)]
    if node.get("type") == "array" and node.get("items", {}).get("type") == "object":
        if example:
            return [f"{indent}{name}:", *array_item_lines(node["items"], indent + "  ")]
        return [*example_entry_lines(name, node, indent), f"{indent}{name}: {scalar(node.get('default'))}"]
    if example:
        return [f"{indent}{name}: {scalar(example_of(node))}"]
    return [*other_example_lines(node, indent), f"{indent}{name}: {scalar(node.get('default'))}"]


def example_entry_lines(name: str, node: dict[str, Any], indent: str) -> list[str]:
    """A list of objects (empty by default) written out with one example entry, commented out."""
    lines = [f"{indent}# For example, instead of the empty list below:", f"{indent}# {name}:"]
    lines += [f"{indent}# {line.removeprefix(indent)}" for line in array_item_lines(node["items"], indent + "  ")]
    return lines


def other_example_lines(node: dict[str, Any], indent: str) -> list[str]:
    """A comment with the example values that differ from the default, if any."""
    others = [value for value in node.get("examples", []) if value != node.get("default")]
    if not others:
        return []
    return [f"{indent}# For example: {' or '.join(scalar(value) for value in others)}"]


def array_item_lines(item_schema: dict[str, Any], indent: str) -> list[str]:
    item_lines = object_lines(item_schema, indent + "  ", example=True)
    first_key = next(index for index, line in enumerate(item_lines) if not line.lstrip().startswith("#"))
    item_lines[first_key] = f"{indent}- " + item_lines[first_key].lstrip()
    return item_lines


def example_of(node: dict[str, Any]) -> Any:
    examples = node.get("examples")
    if examples:
        return examples[0]
    return node.get("default")


def scalar(value: Any) -> str:
    return (
        json.dumps(value, ensure_ascii=False)
        if isinstance(value, str)
        else yaml.safe_dump(value, default_flow_style=True, allow_unicode=True).strip().removesuffix("...").strip()
    )


def comment_lines(text: str, indent: str) -> list[str]:
    if not text:
        return []
    return [f"{indent}# {line}" for line in textwrap.wrap(text, 96 - len(indent))]


def reference_markdown() -> str:
    """The configuration reference page (config/REFERENCE.md), one row per key."""
    root = schema()
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    rows += reference_rows(root, prefix="")
    header = [
        "# Configuration reference",
        "",
        "Generated from `schema.yaml` by `appliance config reference`; do not edit by hand.",
        "",
        root["description"],
        "",
    ]
    return "\n".join(header + rows) + "\n"


def reference_rows(node: dict[str, Any], prefix: str) -> list[str]:
    rows: list[str] = []
    for name, reference in resolved(node).get("properties", {}).items():
        property_schema = resolved(reference)
        key = f"{prefix}{name}"
        kind = property_schema.get("type", "")
        if "enum" in property_schema:
            kind += " (" + " / ".join(str(choice) for choice in property_schema["enum"]) + ")"
        default = json.dumps(property_schema.get("default", ""), ensure_ascii=False)
        description = " ".join(property_schema.get("description", "").split()).replace("|", "\\|")
        rows.append(f"| `{key}` | {kind} | `{default}` | {description} |")
        if kind == "object":
            rows += reference_rows(property_schema, prefix=f"{key}.")
        elif (
            property_schema.get("type") == "array"
            and resolved(property_schema.get("items", {})).get("type") == "object"
        ):
            rows += reference_rows(resolved(property_schema["items"]), prefix=f"{key}[].")
    return rows
