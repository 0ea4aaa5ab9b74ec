"""The `docket` command line: the top of the house, free to use every layer below."""
