"""Prometheus text, scraped as an operator's collector would and read by name and labels."""

from __future__ import annotations

import httpx


async def scrape(port: int) -> str:
    async with httpx.AsyncClient(timeout=5) as http:
        return (await http.get(f"http://127.0.0.1:{port}/metrics")).text


def value(metrics: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` that carry every one of `labels`."""
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total
