"""The launcher and the `pointsman` command: tritonserver with this repository, plus the CLI."""
