"""Activity classes: all I/O of the service (PostgreSQL, SMTP) lives here."""
