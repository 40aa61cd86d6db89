"""Misbehaviour on request: REST answers that fail the way Discord's do (429 with ``retry_after``, 5xx), or
no answer at all (``DROP``)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from .model import JSON

DROP = 0  # the status of a fault that answers nothing: the connection closes, as when the network fails


@dataclass(eq=False)
class Fault:
    """Fail the next ``times`` requests matching ``method`` and ``path_pattern`` with ``status``.

    ``path_pattern`` is an fnmatch pattern over the path below ``/api/v10`` (``*`` also matches
    ``/``), e.g. ``"/channels/*/messages"``. ``hits`` counts how often the fault fired. ``status`` DROP
    closes the connection without an answer (aiohttp raises ServerDisconnectedError in the bot).
    """

    method: str
    path_pattern: str
    status: int = 429
    retry_after: float = 0.05
    times: int = 1
    code: int = 0
    message: str | None = None
    is_global: bool = False
    hits: int = 0

    @property
    def exhausted(self) -> bool:
        return self.hits >= self.times

    def matches(self, method: str, path: str) -> bool:
        return (
            not self.exhausted and self.method in ("*", method.upper()) and fnmatch.fnmatchcase(path, self.path_pattern)
        )

    def body(self) -> JSON:
        if self.status == 429:
            return {
                "message": self.message or "You are being rate limited.",
                "retry_after": self.retry_after,
                "global": self.is_global,
                "code": self.code,
            }
        return {"message": self.message or f"{self.status}: Server Error", "code": self.code}

    def headers(self) -> dict[str, str]:
        if self.status != 429:
            return {}
        # discord.py treats a 429 without a Via header as a Cloudflare ban and raises at once.
        headers = {
            "Via": "1.1 google",
            "Retry-After": str(max(1, round(self.retry_after))),
            "X-RateLimit-Scope": "global" if self.is_global else "user",
        }
        if self.is_global:
            headers["X-RateLimit-Global"] = "true"
        return headers


class FaultPlan:
    """The faults still armed, first match wins."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, path):
                fault.hits += 1
                return fault
        return None

    def clear(self) -> None:
        self.faults.clear()
