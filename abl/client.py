"""``from abl import report``: the one line a researcher adds to a training script that abl runs
as a command trainable (``trainable: {command: ..., metrics: report}``).

Under abl each call appends one JSON line to the file ``$ABL_REPORT_FILE`` names, which the
trial reads as it grows; run alone, the script prints the metrics instead and goes on. Only the
standard library is imported, so the script pays nothing for it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping

REPORT_FILE = "ABL_REPORT_FILE"


def report(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Report ``metrics`` (``{"val/loss": 0.21}``) at ``step`` (an epoch, say) to abl.

    Values must be numbers; a NaN or infinity goes as it is (JSON's ``NaN``: a diverged trial). Outside abl (no ``$ABL_REPORT_FILE``) it prints ``step 3: val/loss=0.21``.
    """
    values = {str(k): float(v) for k, v in metrics.items()}
    path = os.environ.get(REPORT_FILE)
    if not path:
        shown = " ".join(f"{k}={v:.6g}" for k, v in values.items())
        print(f"step {step}: {shown}" if step is not None else shown, file=sys.stderr)
        return
    line: dict[str, float] = {**values, **({"step": int(step)} if step is not None else {})}
    # One write of a whole line: the reader never sees half of it as a line of its own.
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
