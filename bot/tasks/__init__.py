"""Labeling domain: projects, tasks, leases and answers. Plain Python, no Telegram imports."""
