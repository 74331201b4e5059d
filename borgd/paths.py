"""Where borgd keeps its state and configuration (XDG), known before anything is imported.

Standard library only: the entry point (`launch.py`) needs the store's path
before the heavy imports start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    state: Path
    config: Path
    cache: Path  # archive listings: rebuilt from borg when lost

    @property
    def store(self) -> Path:
        return self.state / "borgd.sqlite3"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def lock(self) -> Path:
        return self.state / "borgd.lock"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Paths:
        env = dict(os.environ if env is None else env)
        home = Path(env.get("HOME") or Path.home())
        state = Path(env.get("XDG_STATE_HOME") or home / ".local" / "state")
        config = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
        cache = Path(env.get("XDG_CACHE_HOME") or home / ".cache")
        return cls(state=state / "borgd", config=config / "borgd", cache=cache / "borgd")
