"""One module per `openretina` subcommand: its parser (`add_parser`) and its work (`run`)."""
