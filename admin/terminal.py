"""Worker-controlled text on the operator's terminal: shown, never interpreted.

Rich reads ``[...]`` as markup (a worker named ``[/]`` would crash the command) and a terminal
obeys escape sequences (``ESC[2J`` clears the screen, OSC 8 plants links). Every name,
username, bank name, holder, reason or file name that did not come from the operator's own
command line goes through :func:`term_safe` before Rich prints it.
"""

from __future__ import annotations

from rich.markup import escape

from bot.tasks.safety import printable


def term_safe(text: object) -> str:
    """``text`` with control characters removed and Rich markup escaped."""
    return escape(printable(text))
