"""The Hugging Face offline switches a run needs, set before anything imports ``datasets`` or ``lm_eval``.

Used by the training CLI, the evaluation stage and the search service (also for its Ray workers' env).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from trainables.config import MINIWORLD_MODELS

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_UPDATE_DOWNLOAD_COUNTS": "0"}


def set_offline_env(env: Mapping[str, str] = OFFLINE_ENV) -> None:
    """Set ``env`` (default ``HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_UPDATE_DOWNLOAD_COUNTS=0``) unless set.

    ``datasets`` reads these at import time, so call this before anything imports ``datasets`` or ``lm_eval``;
    ``set_offline_env(offline_env(cfg))`` sets what one run config needs.
    """
    for key, value in env.items():
        os.environ.setdefault(key, value)


def offline_env(cfg: Any) -> dict[str, str]:
    """HF switches a run with this config needs before ``datasets`` is imported (also for Ray workers)."""
    if cfg.model in MINIWORLD_MODELS:
        return dict(OFFLINE_ENV)
    if cfg.eval_data_root:
        return {"HF_DATASETS_OFFLINE": "1", "HF_UPDATE_DOWNLOAD_COUNTS": "0"}
    return {}
