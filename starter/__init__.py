"""Everything that starts or signals workflows: the portal API, the invitation pages."""
