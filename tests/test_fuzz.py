"""The whole API fuzzed from its own OpenAPI document (schemathesis, against a real server).

Every check but `positive_data_acceptance`: the API refuses more than JSON Schema can
say (domains must resolve to IDNA, names carry no control characters, an admin's domain
must be among the partner's), and those refusals are the point. What must hold: no 5xx,
every status, content type and body as documented (errors as problem+json), 405 with
its Allow header, 401 without the token.
"""

from __future__ import annotations

import asyncio
import sys

from tests.helpers.stack import API_TOKEN, Stack, new_enterprise


async def test_schemathesis_finds_nothing(dev_stack: Stack) -> None:
    enterprise = new_enterprise()
    headers = {
        "Authorization": f"Bearer {API_TOKEN}",
        "X-Actor-Email": "fuzz@enterprise.example",
        "X-Actor-Role": "account_holder",
        "X-Actor-Enterprise": enterprise,
    }
    args = [f"{dev_stack.base_url}/openapi.json", "--checks", "all", "--exclude-checks", "positive_data_acceptance"]
    args += ["--max-examples", "10", "--seed", "7", "--no-color"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "schemathesis.cli", "run", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(300):
        out, _ = await process.communicate()

    report = out.decode()
    assert process.returncode == 0, report[-6000:]
    assert " passed" in report and "failures" not in report.split("Test cases:")[-1]
