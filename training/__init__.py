"""Fit, calibrate, evaluate and register Docket's models."""
