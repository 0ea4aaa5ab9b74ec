"""The marketplace's events: checked on the way in, kept in the event store, followed into the live history."""
