"""``python -m unitctl_testing up|status|down``: the harness's CLI (:mod:`unitctl_testing.cli`)."""

from __future__ import annotations

import sys

from unitctl_testing.cli import main

sys.exit(main())
