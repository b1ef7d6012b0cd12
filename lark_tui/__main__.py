"""``python -m lark_tui`` is ``lark-tui``."""

from lark_tui.app import main

main()
