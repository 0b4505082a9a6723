"""Models, registered by name; ``model.kind`` in a trial config picks one (lazy imports)."""

from abl.trainables.registry import Registry

MODELS: Registry = Registry(
    "model",
    {
        "att": "abl.trainables.models.forecast:AttentionForecaster",
        "lstm": "abl.trainables.models.forecast:LSTMForecaster",
    },
)

__all__ = ["MODELS"]
