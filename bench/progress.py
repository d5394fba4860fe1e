"""One place that decides how progress is shown (tqdm; quiet when not on a terminal or in tests)."""
from __future__ import annotations

import os
from typing import Any

from tqdm.auto import tqdm


def progress_bar(**kwargs: Any) -> tqdm:
    # disable=None lets tqdm hide itself when stderr is not a TTY (CI logs stay readable);
    # BENCH_PROGRESS=0/1 forces it off/on.
    forced = os.environ.get("BENCH_PROGRESS")
    disable = None if forced is None else forced == "0"
    return tqdm(disable=disable, dynamic_ncols=True, leave=False, **kwargs)
