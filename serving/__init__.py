"""The running service: the HTTP face (api), the queue, enforcement, the marketplace's events, scoring and storage."""
