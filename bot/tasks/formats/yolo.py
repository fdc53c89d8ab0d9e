"""YOLO detection folders: ``images/**`` with ``labels/**/<stem>.txt`` beside them (``class cx cy w
h [conf]``, normalised to 0..1), class names from ``data.yaml`` (``names``: a list or an
``{index: name}`` map) or ``classes.txt`` (one name per line). One confirm-box task per line.

Written by hand: the format is five numbers a line, and the writer is the exact inverse of the
reader (checked against ``globox`` in the tests where it is installed).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.tasks.datasets import IMAGE_SUFFIXES, DatasetError, Problem, Row
from bot.tasks.safety import confined_path

YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml")


def is_yolo(source: Path) -> bool:
    if source.is_file():
        return source.suffix.lower() in (".yaml", ".yml")
    return (source / "labels").is_dir() and (source / "images").is_dir()


def _names_from_yaml(path: Path) -> list[str]:
    """The ``names`` of a data.yaml: with PyYAML when it is installed, else with
    :func:`read_names`, which reads the forms Ultralytics and Roboflow write. A full YAML parser
    (3 MB) is not worth a place in every install for one key."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path.name}: not readable YAML ({exc})") from None
    try:
        import yaml
    except ImportError:
        names: Any = read_names(text, path.name)
    else:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when the wheel has it
        try:
            data = yaml.load(text, Loader=loader)  # a safe loader: plain data only
        except yaml.YAMLError as exc:
            raise DatasetError(f"{path.name}: not readable YAML ({exc})") from None
        names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        try:
            indexed = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            raise DatasetError(f"{path.name}: 'names' keys must be class indexes") from None
        if sorted(indexed) != list(range(len(indexed))):
            raise DatasetError(f"{path.name}: 'names' must number the classes 0..{len(indexed) - 1}")
        return [indexed[i] for i in range(len(indexed))]
    if isinstance(names, list) and names:
        return [str(n) for n in names]
    raise DatasetError(f"{path.name}: no 'names' list of classes")


def _scalar(token: str) -> str:
    token = token.strip()
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
        inner = token[1:-1]
        return inner.replace("''", "'") if token[0] == "'" else json.loads(token)
    return token.split(" #", 1)[0].strip()


def _split_flow(body: str) -> list[str]:
    """Items of a one-line flow collection, commas inside quotes kept."""
    items, current, quote = [], "", ""
    for ch in body:
        if quote:
            current += ch
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            current += ch
        elif ch == ",":
            items.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        items.append(current)
    return [item for item in items if item.strip()]


def read_names(text: str, name: str = "data.yaml") -> list[str] | dict[str, str] | None:
    """``names`` of a YOLO data.yaml without a YAML library: a flow list (``[a, b]``) or map
    (``{0: a}``) on its line, or a block list (``- a``) or map (``0: a``) indented below it."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("names:"):
            continue
        rest = line[len("names:") :].split(" #", 1)[0].strip()
        if rest.startswith("["):
            if not rest.endswith("]"):
                raise DatasetError(f"{name}: 'names' list must end on its line (or install PyYAML)")
            return [_scalar(x) for x in _split_flow(rest[1:-1])]
        if rest.startswith("{"):
            if not rest.endswith("}"):
                raise DatasetError(f"{name}: 'names' map must end on its line (or install PyYAML)")
            pairs = [x.split(":", 1) for x in _split_flow(rest[1:-1])]
            return {_scalar(k): _scalar(v) for k, v in pairs}
        if rest:
            raise DatasetError(f"{name}: 'names' must be a list or a map of classes")
        block = list(lines[i + 1 :])
        items: list[str] = []
        mapping: dict[str, str] = {}
        for entry in block:
            if not entry.strip() or entry.lstrip().startswith("#"):
                continue
            if not entry[:1].isspace() and not entry.startswith("-"):
                break  # the next top-level key
            stripped = entry.strip()
            if stripped.startswith("- "):
                items.append(_scalar(stripped[2:]))
            elif ":" in stripped:
                key, value = stripped.split(":", 1)
                mapping[_scalar(key)] = _scalar(value)
            else:
                raise DatasetError(f"{name}: cannot read the 'names' line {stripped!r} (or install PyYAML)")
        return mapping or items or None
    return None


def class_names(root: Path, yaml_file: Path | None = None) -> list[str]:
    """The class names of a YOLO folder (``data.yaml``, else ``classes.txt``)."""
    for path in [yaml_file] if yaml_file else [root / n for n in YAML_NAMES]:
        if path is not None and path.is_file():
            return _names_from_yaml(path)
    classes = root / "classes.txt"
    if classes.is_file():
        names = [line.strip() for line in classes.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
        if names:
            return names
    raise DatasetError(f"{root.name}: no class names: add data.yaml (names: [...]) or classes.txt")


def read(source: Path, allow_outside: Sequence[Path] = ()) -> tuple[list[Row], list[Problem]]:
    """Rows of a YOLO folder (or its data.yaml); images without a label file have no boxes.
    An image that is a symlink out of the folder is a bad row (unless ``allow_outside``)."""
    root, yaml_file = (source.parent, source) if source.is_file() else (source, None)
    names = class_names(root, yaml_file)
    images_dir, labels_dir = root / "images", root / "labels"
    if not images_dir.is_dir() or not labels_dir.is_dir():
        raise DatasetError(f"{root.name}: a YOLO folder needs images/ and labels/")
    rows: list[Row] = []
    problems: list[Problem] = []
    images = sorted(p for p in images_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    by_stem = {p.relative_to(images_dir).with_suffix("").as_posix(): p for p in images}
    for label_file in sorted(labels_dir.rglob("*.txt")):
        stem = label_file.relative_to(labels_dir).with_suffix("").as_posix()
        file = f"labels/{stem}.txt"
        image = by_stem.get(stem)
        try:
            lines = label_file.read_text(encoding="utf-8-sig").splitlines()
        except UnicodeDecodeError:
            problems.append(Problem(file, None, "not UTF-8 text"))
            continue
        if image is None:
            if any(line.strip() for line in lines):
                problems.append(Problem(file, None, f"no image images/{stem}.* for this label file"))
            continue
        rel = image.relative_to(images_dir).as_posix()
        try:
            image = confined_path(images_dir, rel, allow_outside)
        except ValueError as exc:
            problems.append(Problem(file, None, f"image images/{rel}: {exc}"))
            continue
        for line_no, line in enumerate(lines, start=1):
            parts = line.split()
            if not parts:
                continue
            row = _row(parts, names, file=file, line_no=line_no, rel=rel, image=image, stem=stem)
            if isinstance(row, str):
                problems.append(Problem(file, line_no, row))
            else:
                rows.append(row)
    return rows, problems


def _row(parts: list[str], names: list[str], *, file: str, line_no: int, rel: str, image: Path, stem: str) -> Row | str:
    if len(parts) not in (5, 6):
        return f"expected 'class cx cy w h [conf]', got {len(parts)} values (segmentation lines are not boxes)"
    try:
        cls = int(parts[0])
        values = [float(v) for v in parts[1:]]
    except ValueError:
        return f"not numbers: {' '.join(parts)!r}"
    if not 0 <= cls < len(names):
        return f"class {cls} is not one of the {len(names)} classes"
    score = values[4] if len(values) == 5 else None
    if score is not None and not 0.0 <= score <= 1.0:
        return f"confidence {score:g} is not between 0 and 1"
    src: dict[str, Any] = {"fmt": "yolo", "file": rel, "stem": stem, "line": line_no, "class_id": cls}
    return Row(
        file=file,
        row=line_no,
        image=f"images/{rel}",
        image_path=image,
        external_id=f"{rel}#{line_no}",
        prelabel=names[cls],
        box=("norm", values[:4]),
        score=score,
        src=src,
    )
