"""Benchmarks: offline (simulate, features, train, batch score), online (HTTP service) and queue; `docket bench`."""
