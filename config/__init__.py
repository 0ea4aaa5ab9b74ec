"""Configuration: the one typed Settings, read from the environment (the lowest layer: everyone may import it)."""
