"""minilm: a transformer language model from scratch in NumPy, with an interactive course."""
from .errors import MinilmError
from .model import GPT, GPTConfig

__version__ = "0.1.0"  # the one place the version is written: pyproject.toml reads it from here

__all__ = ["GPT", "GPTConfig", "MinilmError", "__version__"]
