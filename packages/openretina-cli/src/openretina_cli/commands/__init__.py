"""Subcommands of `openretina`, one module each (`add_parser` and `run`)."""
