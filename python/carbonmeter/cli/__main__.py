"""`python -m carbonmeter.cli`, the same as the `carbonmeter` command."""

import sys

from carbonmeter.cli import main

sys.exit(main())
