"""An Actor-based environment: the Actor is built on the first call, so the env vars
given at start (API_KEY here) are visible to it. Async methods run concurrently on the
server's event loop; sync methods run in worker threads."""

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Optional


@dataclass
class Evaluation:
    task_type: str
    score: float
    api_key_set: bool


class Actor:
    def __init__(self):
        self.api_key = os.environ.get("API_KEY")
        self.calls = 0

    async def evaluate(self, task_type: str = "sat", delay: float = 0.0, timeout: Optional[float] = None) -> Evaluation:
        """Async: awaits `delay` seconds, then scores the task. Returns a dataclass (sent as a dict)."""
        self.calls += 1
        await asyncio.sleep(delay)
        return Evaluation(task_type=task_type, score=1.0, api_key_set=self.api_key is not None)

    def whoami(self) -> dict:
        """Sync: runs in a worker thread."""
        return {"api_key": self.api_key, "calls": self.calls}

    def work(self, seconds: float = 0.1) -> float:
        """Sync and blocking: several run at once in threads."""
        time.sleep(seconds)
        return seconds

    def fail(self, message: str = "boom"):
        raise RuntimeError(message)
