"""Models, registered by name; ``model.kind`` in a trial config picks one (lazy imports)."""

from abl.trainables.registry import Registry

MODELS: Registry = Registry(
    "model",
    {
        "att": "abl.trainables.models.forecast:AttentionForecaster",
        "att_mh": "abl.trainables.models.forecast:MultiHeadForecaster",
        "lstm": "abl.trainables.models.forecast:LSTMForecaster",
        "gpt": "abl.trainables.models.gpt:GPT",
        "bigram": "abl.trainables.models.bigram:Bigram",
        "bigram_mf": "abl.trainables.models.bigram:BigramMF",
        "bigram_att": "abl.trainables.models.bigram:BigramAttention",
        "looped": "abl.trainables.models.looped:LoopedTransformer",
        "latent": "abl.trainables.models.latent:LatentThinker",
    },
    {
        kind: f"abl.trainables.models.configs:{name}"
        for kind, name in {
            "att": "AttentionForecasterConfig",
            "att_mh": "MultiHeadForecasterConfig",
            "lstm": "LSTMForecasterConfig",
            "gpt": "GPTConfig",
            "bigram": "BigramConfig",
            "bigram_mf": "BigramMFConfig",
            "bigram_att": "BigramAttentionConfig",
            "looped": "LoopedTransformerConfig",
            "latent": "LatentThinkerConfig",
        }.items()
    },
)

__all__ = ["MODELS"]
