"""Raw tables to features: the data contract, validation, the accounts' history and point-in-time features."""
