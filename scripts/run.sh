#!/usr/bin/env bash
# `make run`: start DOTS Family Mode on this machine in the foreground (see
# dots_cli/run.py: the system bus, polkitd, the collector, the policy daemon,
# the agent, and a live view with the commands to try next). Ctrl-C stops it.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
exec "${DOTS_VENV:-$here/.venv}/bin/python" -m dots_cli.run "$@"
