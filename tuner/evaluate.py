"""``python -m tuner.evaluate``: score a saved model with lm-eval (the CLI is ``trainables.evaluation.cli``)."""

import sys

from trainables.evaluation.cli import main

if __name__ == "__main__":
    sys.exit(main())
