"""The champion models at work: the runtime that scores with the live history, reloads, and request batching."""
