"""Ranks where a process spent its CPU, from py-spy's collapsed stacks (BENCH_PROFILE).

`python -m bench.profile bench/results/profiles/<name>-worker-*.txt` prints, for the files given
together (a worker restarted during a run writes one per pid):

- by area: the share of samples whose innermost frame lies in our code, the Temporal
  SDK, asyncpg, pydantic, the web stack, the standard library...;
- the frames with the most samples inclusive (on the stack) among our own modules;
- the frames with the most samples of their own (innermost), anywhere.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

OURS = ("partners/", "store/", "starter/", "activities/", "workflows/", "worker.py")
AREAS = {
    "ours": OURS,
    "temporal sdk": ("temporalio/",),
    "asyncpg": ("asyncpg/",),
    "pydantic": ("pydantic/", "pydantic_core/"),
    "web (uvicorn, starlette, fastapi, httptools)": ("uvicorn/", "starlette/", "fastapi/", "httptools/"),
    "protobuf": ("google/protobuf/",),
    "mail (aiosmtplib, jinja2, email)": ("aiosmtplib/", "jinja2/", "email/"),
    "crypto": ("cryptography/",),
    "opentelemetry": ("opentelemetry/",),
}
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def frames(line: str) -> tuple[list[str], int]:
    stack, _, count = line.rstrip().rpartition(" ")
    names = []
    for frame in stack.split(";"):
        match = FRAME.match(frame)
        names.append(f"{match['func']} ({_short(match['file'])})" if match else frame)
    return names, int(count)


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "/lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1].lstrip("/0123456789.")
    return path


def area(frame: str) -> str:
    for name, prefixes in AREAS.items():
        if any(f"({p}" in frame for p in prefixes):
            return name
    return "stdlib and other"


def rank(paths: list[Path], top: int) -> str:
    own, inclusive, areas, total = Counter[str](), Counter[str](), Counter[str](), 0
    for path in paths:
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            names, count = frames(line)
            total += count
            own[names[-1]] += count
            areas[area(names[-1])] += count
            for name in set(names):
                if any(f"({p}" in name for p in OURS):
                    inclusive[name] += count
    out = [f"{total} samples from {len(paths)} file(s)", "", "innermost frame by area:"]
    out += [f"  {n / total:6.1%}  {a}" for a, n in areas.most_common()]
    out += ["", f"our frames, inclusive (top {top}):"]
    out += [f"  {n / total:6.1%}  {f}" for f, n in inclusive.most_common(top)]
    out += ["", f"innermost frames (top {top}):"]
    out += [f"  {n / total:6.1%}  {f}" for f, n in own.most_common(top)]
    return "\n".join(out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(rank(args.files, args.top))
