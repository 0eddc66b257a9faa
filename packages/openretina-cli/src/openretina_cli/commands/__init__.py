"""The subcommands of `openretina` that live in modules of their own."""
