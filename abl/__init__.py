"""abl: architecture ablations of small PyTorch models as Ray Tune sweeps.

Importing ``abl`` is cheap: torch, ray and mlflow load only in the modules that use them.
"""

from abl.client import report

__all__ = ["report"]
__version__ = "0.1.0"
