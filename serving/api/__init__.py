"""The HTTP face: one FastAPI app of routers, one place mapping failures to statuses, API-key authentication."""
