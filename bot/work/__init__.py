"""Paid work: the use cases where labeling (``bot.tasks``) and money (``bot.wallet``) meet.

``answers``: record an answer, pay it and lease the next task (one transaction per tap);
``rejection``: reject a cheater's answers and reverse their pay; ``bonuses``: who qualifies for
a bonus by golden accuracy. ``bot.tasks`` and ``bot.wallet`` never import each other; both
import ``bot.workers``.
"""
