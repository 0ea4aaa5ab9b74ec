"""The storage edge: engines, migrations, transactions, the audit trail, and the tables they hold."""
