#!/usr/bin/env python3
"""Generate ``bot/emulator/botapi_spec.json`` from the full Bot API description.

The Bot API emulator validates every call against the official spec. The full
machine-readable spec (``api.json`` from PaulSonOfLars/telegram-bot-api-spec,
MIT licence) lives outside the repository in ``../shared/telegram-bot-api/``
and is almost 1 MB of prose. Users' clones do not have it, so the package ships
a trimmed copy holding only what validation needs: method and type names,
field names, field types, required flags, return types, union subtypes, and the
constant value of discriminator fields (``"type": "photo"`` of
``InputMediaPhoto``), which the source only states in a field description.

Usage::

    python scripts/trim_botapi_spec.py            # regenerate the package copy
    python scripts/trim_botapi_spec.py --check    # exit 1 if the copy is stale

``tests/emulator/test_spec.py`` runs the same comparison whenever the source
is present.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE_DIR = REPO_ROOT.parent / "shared" / "telegram-bot-api"
DEFAULT_OUTPUT = REPO_ROOT / "bot" / "emulator" / "botapi_spec.json"
LICENSE_OUTPUT = REPO_ROOT / "bot" / "emulator" / "BOTAPI_SPEC_LICENSE"

# "Type of the media, must be photo" / 'Type of the reaction, always "emoji"'.
_CONST_RE = re.compile(r"(?:always|must be)\s+[\"“]?([a-z_]+)[\"”]?\s*$")
_DISCRIMINATOR_FIELDS = frozenset({"type", "status", "source"})


def _trim_fields(fields: list[dict[str, Any]], *, is_subtype: bool) -> list[dict[str, Any]]:
    trimmed = []
    for field in fields:
        item: dict[str, Any] = {
            "name": field["name"],
            "types": list(field["types"]),
            "required": bool(field["required"]),
        }
        if is_subtype and field["name"] in _DISCRIMINATOR_FIELDS:
            match = _CONST_RE.search(field.get("description", ""))
            if match:
                item["const"] = match.group(1)
        trimmed.append(item)
    return trimmed


def trim(source: dict[str, Any], license_text: str = "") -> dict[str, Any]:
    """Return the trimmed spec: everything validation needs, no prose.

    ``license_text`` (the source's MIT notice) is embedded too, so the notice travels
    with the data even where ``BOTAPI_SPEC_LICENSE`` is not packaged.
    """
    methods = {}
    for name, method in source["methods"].items():
        methods[name] = {
            "returns": list(method.get("returns", [])),
            "fields": _trim_fields(method.get("fields", []), is_subtype=False),
        }
    types: dict[str, Any] = {}
    for name, type_ in source["types"].items():
        entry: dict[str, Any] = {}
        if "fields" in type_:
            entry["fields"] = _trim_fields(type_["fields"], is_subtype=bool(type_.get("subtype_of")))
        if "subtypes" in type_:
            entry["subtypes"] = list(type_["subtypes"])
        types[name] = entry
    return {
        "version": source["version"],
        "release_date": source["release_date"],
        "origin": "Trimmed by scripts/trim_botapi_spec.py from api.json of "
        "github.com/PaulSonOfLars/telegram-bot-api-spec (MIT licence, see BOTAPI_SPEC_LICENSE).",
        "license": license_text,
        "methods": methods,
        "types": types,
    }


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _render_entries(entries: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for index, (name, entry) in enumerate(entries.items()):
        parts = []
        for key, value in entry.items():
            if key == "fields" and value:
                fields = ",\n".join(f"    {_dump(field)}" for field in value)
                parts.append(f'   "fields": [\n{fields}\n   ]')
            else:
                parts.append(f"   {_dump(key)}: {_dump(value)}")
        body = ",\n".join(parts)
        comma = "," if index < len(entries) - 1 else ""
        lines.append(f"  {_dump(name)}: {{\n{body}\n  }}{comma}" if parts else f"  {_dump(name)}: {{}}{comma}")
    return lines


def render(trimmed: dict[str, Any]) -> str:
    """Serialise deterministically, one field per line, so the file diffs cleanly."""
    head = [f" {_dump(key)}: {_dump(trimmed[key])}," for key in ("version", "release_date", "origin", "license")]
    lines = ["{", *head, ' "methods": {', *_render_entries(trimmed["methods"]), " },"]
    lines += [' "types": {', *_render_entries(trimmed["types"]), " }", "}"]
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == trimmed
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE_DIR / "api.json")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true", help="only compare, exit 1 if stale")
    args = parser.parse_args(argv)

    if not args.source.is_file():
        print(f"spec source not found: {args.source}", file=sys.stderr)
        return 2
    source = json.loads(args.source.read_text(encoding="utf-8"))
    licence = args.source.parent / "LICENSE"
    license_text = licence.read_text(encoding="utf-8") if licence.is_file() else ""
    text = render(trim(source, license_text))

    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.is_file() else ""
        if current != text:
            print(f"{args.output} is stale; run scripts/trim_botapi_spec.py", file=sys.stderr)
            return 1
        print(f"{args.output} matches {args.source}")
        return 0

    args.output.write_text(text, encoding="utf-8")
    if licence.is_file() and args.output == DEFAULT_OUTPUT:
        shutil.copyfile(licence, LICENSE_OUTPUT)
    print(f"wrote {args.output} ({len(text):,} bytes, {source['version']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
