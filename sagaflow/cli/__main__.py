"""`python -m sagaflow.cli` is the `sagaflow` command."""

import sys

from sagaflow.cli.main import main

sys.exit(main())
