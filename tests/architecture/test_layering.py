"""Import layering: the domain knows nothing of Telegram, the CLI nothing of the handlers.

Checked twice: statically (every ``import`` statement in the package's source, including those
inside functions) and at run time (importing every module of the package in a fresh
interpreter and looking at what ended up in ``sys.modules``, which catches indirect imports).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TELEGRAM_SIDE = ("aiogram", "bot.handlers", "bot.telegram", "bot.jobs")

# package -> module prefixes it must never import
RULES: dict[str, tuple[str, ...]] = {
    "bot.tasks": (*TELEGRAM_SIDE, "bot.wallet", "bot.work"),
    "bot.wallet": (*TELEGRAM_SIDE, "bot.tasks", "bot.work"),
    "bot.workers": (*TELEGRAM_SIDE, "bot.tasks", "bot.wallet", "bot.work"),
    "bot.work": TELEGRAM_SIDE,
    "bot.autoseg": (*TELEGRAM_SIDE, "bot.tasks", "bot.wallet", "bot.broadcast", "bot.db"),
    "bot.broadcast": (*TELEGRAM_SIDE, "bot.wallet", "bot.work"),
    "bot.telegram": ("bot.handlers", "bot.jobs"),
    "admin": ("bot.handlers", "bot.jobs"),
}


def _modules(package: str) -> list[str]:
    folder = ROOT.joinpath(*package.split("."))
    names = []
    for path in sorted(folder.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


def _type_checking_only(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every import that runs (``if TYPE_CHECKING:`` blocks are for the type checker only)."""
    found: list[tuple[int, str]] = []
    stack: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"), filename=str(path))]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
        if isinstance(node, ast.If) and _type_checking_only(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))
    return sorted(found)


def _forbidden(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("package", sorted(RULES))
def test_no_forbidden_import_statement(package: str) -> None:
    folder = ROOT.joinpath(*package.split("."))
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in sorted(folder.rglob("*.py"))
        for line, name in _imports(path)
        if _forbidden(name, RULES[package])
    ]
    assert offenders == [], f"{package} must not import {', '.join(RULES[package])}:\n" + "\n".join(offenders)


@pytest.mark.parametrize("package", sorted(RULES))
def test_importing_the_package_loads_nothing_forbidden(package: str) -> None:
    script = (
        "import importlib, json, sys\n"
        f"for name in {_modules(package)!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    bad = sorted({m for m in loaded if _forbidden(m, RULES[package])})
    assert bad == [], f"importing {package} loads {bad}"


def test_lazy_imports_of_the_cli_stay_clear_of_the_handlers() -> None:
    """admin/broadcast.py sends through bot.telegram inside a function: that must not drag in
    the handlers either."""
    script = (
        "import importlib, json, sys\n"
        "for name in ('admin.cli', 'bot.telegram.broadcast_transport', 'bot.telegram.session'):\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert [m for m in loaded if _forbidden(m, ("bot.handlers", "bot.jobs"))] == []
