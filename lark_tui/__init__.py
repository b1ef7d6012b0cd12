"""Lark console."""
