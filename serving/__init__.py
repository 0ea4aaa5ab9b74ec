"""The BentoML service, scoring and ranking, and the command line."""
