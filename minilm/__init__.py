"""minilm: a transformer language model from scratch in NumPy, with an interactive course."""
from .errors import MinilmError
from .memory import keep_freed_memory
from .model import GPT, GPTConfig

__version__ = "0.1.0"  # the one place the version is written: pyproject.toml reads it from here

keep_freed_memory()  # faster steps: freed arrays stay in the process for the next step (see memory.py)

__all__ = ["GPT", "GPTConfig", "MinilmError", "__version__"]
