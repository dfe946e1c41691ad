"""The service's version: the installed package's, as pyproject.toml sets it."""

from __future__ import annotations

from functools import cache
from importlib import metadata


@cache
def package_version() -> str:
    return metadata.version("partner-onboarding")
