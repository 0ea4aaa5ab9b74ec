"""The append-only enforcement ledger: violations recorded, the mapper's decisions, appeals and remedial steps."""
