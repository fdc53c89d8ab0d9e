"""Broadcast domain: resumable, paced delivery of announcements. No Telegram imports."""
