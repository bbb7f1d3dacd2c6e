"""The long-running command: its command line, signals, HTTP endpoints, and the subcommands
that talk to them."""
