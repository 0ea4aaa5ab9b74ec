"""Browser tests: the console in a real headless Chromium (a package so its conftest does not shadow tests/conftest.py)."""
