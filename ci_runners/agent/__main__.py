"""`python -m ci_runners.agent`: see `ci_runners.agent.cli`."""

import sys

from ci_runners.agent.cli import main

sys.exit(main())
