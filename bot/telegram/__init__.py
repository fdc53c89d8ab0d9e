"""The Telegram plumbing of a bot process that is not a handler.

* ``session``: the HTTP session to the Bot API, with the plain-JSON fast path of a tap;
* ``fast_types``: aiogram types that bind their bot without pydantic's private-attribute work;
* ``gate``, ``redis_wire``, ``redis_support``: Redis admission of updates across replicas;
* ``broadcast_transport``: the broadcast domain's transport on aiogram (also used by the CLI);
* ``buttons``: callback data other layers must agree on; ``metrics``: Prometheus counters;
* ``runtime``: ``App``, the bot's typed run-time state.

Handlers (``bot.handlers``) and jobs (``bot.jobs``) build on this package; it imports neither,
and the domain packages import none of the three. aiogram's internals that the fast paths
rely on are pinned in pyproject.toml and checked by tests/telegram/test_aiogram_internals.py.
"""
