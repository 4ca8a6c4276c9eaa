"""minilm: a transformer language model from scratch in NumPy, with an interactive course."""
