"""The service's PostgreSQL: the pool and its migrations, the stores the API calls
directly (the read model, grants, memberships, a person's data, events and webhook
endpoints, the limiters' counts) and the SQL every transaction shares (`sql.py`). The
worker's activities (`activities/`) build on it; it imports nothing above it."""
