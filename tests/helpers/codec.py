"""The payload key of the tests, committed beside the recorded histories it encrypted
(tests/data/payload-keys): a test key, never a production one."""

from __future__ import annotations

from pathlib import Path

from temporalio.converter import DataConverter

from partners.codec import data_converter, parse_keys

TEST_PAYLOAD_KEYS = (Path(__file__).parent.parent / "data" / "payload-keys").read_text().strip()


def converter_for_tests(keys: str = TEST_PAYLOAD_KEYS) -> DataConverter:
    return data_converter(parse_keys(keys))
