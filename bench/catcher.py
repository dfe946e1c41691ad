"""The SMTP catcher as a process of its own (`python -m bench.catcher PORT`), as a relay
is in production: each mail it takes is one JSON line on stdout (recipient, link, the
time it arrived), which the driver reads; the mail's parsing costs this process only."""

from __future__ import annotations

import asyncio
import collections
import json
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

from devstack.mailcatcher import MailCatcher, ReceivedMail
from devstack.net import free_port

if TYPE_CHECKING:
    from bench.local import LocalStack


def _tell(mail: ReceivedMail) -> None:
    try:
        link = mail.link
    except AssertionError:
        return  # a notice to an inviter (R24): no link to click, nothing the driver waits for
    line = json.dumps({"to": mail.recipients[0], "link": link, "at": time.time()})
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main() -> None:
    catcher = MailCatcher(port=int(sys.argv[1]), on_mail=_tell)
    catcher.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(json.dumps({"ready": catcher.port}), flush=True)
    stop.wait()
    catcher.stop()


class Catcher:
    """The driver's side: the catcher process, and the mails it tells of, by recipient."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.port = port
        self._process = process
        self._mails: dict[str, asyncio.Queue[tuple[str, float]]] = collections.defaultdict(asyncio.Queue)
        self._reading = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, local: LocalStack) -> Catcher:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.catcher", str(free_port()), env=local.env(), stdout=asyncio.subprocess.PIPE
        )
        local.processes["smtp"] = process  # its CPU is sampled, it is stopped with the stack
        assert process.stdout is not None
        ready = json.loads(await process.stdout.readline())
        return cls(process, ready["ready"])

    async def _read(self) -> None:
        assert self._process.stdout is not None
        async for line in self._process.stdout:
            mail = json.loads(line)
            self._mails[mail["to"]].put_nowait((mail["link"], mail["at"]))

    async def next_mail(self, address: str, timeout: float = 120) -> tuple[str, float]:
        """The next mail to `address` not yet taken: its link, and when it arrived (time.time())."""
        async with asyncio.timeout(timeout):
            return await self._mails[address.lower()].get()


if __name__ == "__main__":
    main()
