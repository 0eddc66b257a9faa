#!/usr/bin/env bash
# A longer property-based search over every command's options than CI runs (see
# tests/cli/test_cli_fuzz.py): 300 examples per command by default, HYPOTHESIS_PROFILE=fast for CI's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-long}" uv run pytest tests/cli/test_cli_fuzz.py -p no:xdist -q "$@"
