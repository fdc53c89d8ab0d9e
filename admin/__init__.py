"""Operators' command line: projects, datasets, exports, payouts and broadcasts."""
