"""minilm: a transformer language model from scratch in NumPy, with an interactive course."""
from .errors import MinilmError
from .model import GPT, GPTConfig

__all__ = ["GPT", "GPTConfig", "MinilmError"]
