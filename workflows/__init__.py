"""Deterministic workflow classes only: every database or SMTP call is an activity."""
