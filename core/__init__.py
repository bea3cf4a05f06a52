"""Shared foundations: configuration, Redis keys, models, time and push."""
