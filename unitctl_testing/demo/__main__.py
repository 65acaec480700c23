"""``python -m unitctl_testing.demo``: what bin/demo runs (:mod:`unitctl_testing.demo.cli`)."""

from __future__ import annotations

import sys

from unitctl_testing.demo.cli import main

sys.exit(main())
