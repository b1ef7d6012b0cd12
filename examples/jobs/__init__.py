"""The demo project's jobs; ``lark-core worker`` discovers every module in this package.

Modules whose names start with ``_`` (like :mod:`._util`) are helpers, not job files.
"""
