"""``python -m tuner.run``: run a search (the CLI is ``tuner.orchestration.cli``)."""

import os
import sys

from tuner.orchestration.cli import main

if __name__ == "__main__":
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
    sys.exit(main())
