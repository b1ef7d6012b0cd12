"""Lark: a job queue on Redis."""
