"""``python -m bot.emulator --port 8081``: run the Bot API emulator until Ctrl-C."""

from .runner import main

raise SystemExit(main())
