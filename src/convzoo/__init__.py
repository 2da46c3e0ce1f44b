"""convzoo: faithful, tested, fast implementations of convolutional-network papers."""

from convzoo.errors import ConvzooError
from convzoo.registry import (
    ModelCard,
    count_params,
    create_model,
    data_config,
    get_card,
    list_models,
    register_model,
)

__version__ = "0.1.0"

__all__ = [
    "ConvzooError",
    "ModelCard",
    "count_params",
    "create_model",
    "data_config",
    "deploy",
    "get_card",
    "list_models",
    "load_weights",
    "register_model",
    "save_weights",
]


def load_weights(model, path, strict: bool = True):
    """Load a safetensors checkpoint into ``model`` (no pickled code is executed)."""
    from convzoo.weights import load_weights as _load

    return _load(model, path, strict=strict)


def save_weights(model, path):
    from convzoo.weights import save_weights as _save

    return _save(model, path)


def deploy(model):
    """Fuse every re-parameterisable block and conv+BN pair for inference (returns the model)."""
    from convzoo.layers.fuse import deploy as _deploy

    return _deploy(model)
