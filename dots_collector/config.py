"""The collector's configuration: ``/etc/dots/collector.toml`` overridden by
command-line options, validated by pydantic."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dots_common.limits import MAX_UIDS, MONITORS

from .enforcers.rules_file import DEFAULT_RULES_FILE
from .pinning import DEFAULT_PIN_DIR

DEFAULT_CONFIG = Path("/etc/dots/collector.toml")


class CollectorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    monitors: list[str] = Field(default_factory=lambda: list(MONITORS))
    #: ring buffer size per monitor, per CPU, in KiB (the seed's 128 KiB)
    ringbuf_kib_per_cpu: int = Field(default=128, ge=4, le=65536)
    #: a batch signal is sent at this many events ...
    batch_max_events: int = Field(default=1024, ge=1, le=65536)
    #: ... or this long after its first event, whichever comes first
    batch_interval_ms: int = Field(default=100, ge=1, le=10000)
    #: with nothing read for a second, the collector stops its 0.1 s timer
    #: for up to this long (a monitor's periodic work still runs on time);
    #: the next event wakes it at once (common.h `doze`)
    idle_wait_ms: int = Field(default=1000, ge=100, le=60000)
    #: events kept for replay until the policy daemon acknowledges them
    retain_max_events: int = Field(default=100_000, ge=0, le=10_000_000)
    #: uids monitored from the start (the policy daemon sets them later)
    uids: list[int] = Field(default_factory=list, max_length=MAX_UIDS)
    #: scheduling priority (nice) of the collector: like auditd's
    #: priority_boost, the reader of the ring buffers should get a CPU soon
    #: after a wake-up on a busy machine (it uses CPU only per event read)
    nice: int = Field(default=-10, ge=-20, le=19)
    #: load the in-kernel enforcers (blocked programs and addresses)
    enforcers: bool = True
    #: the enforcement rules in force, restored at start ("" = not kept)
    rules_file: str = DEFAULT_RULES_FILE
    #: where the BPF programs' links and maps are pinned (bpffs): they stay
    #: in force while a crashed collector restarts (pinning.py)
    pin_dir: str = DEFAULT_PIN_DIR
    #: path prefixes the filesystem monitor never reports
    #: (and /var/lib/dots: the policy daemon's own database writes)
    excluded_prefixes: list[str] = Field(default_factory=lambda: ["/proc", "/sys", "/dev",
                                                                  "/var/lib/dots"],
                                         max_length=16)

    @field_validator("monitors")
    @classmethod
    def known_monitors(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in MONITORS]
        if unknown:
            raise ValueError(f"unknown monitor(s) {', '.join(unknown)}; known: {', '.join(MONITORS)}")
        if not names:
            raise ValueError("at least one monitor must be enabled")
        return list(dict.fromkeys(names))

    @field_validator("uids")
    @classmethod
    def valid_uids(cls, uids: list[int]) -> list[int]:
        bad = [u for u in uids if not 0 <= u < 2**32 - 1]
        if bad:
            raise ValueError(f"invalid uid(s): {bad[:5]}")
        return uids


def load_config(path: Path | None, overrides: dict) -> CollectorConfig:
    """Read the TOML file (missing default file = defaults), then apply the
    command-line overrides that were given."""
    data: dict = {}
    file = path or DEFAULT_CONFIG
    if file.exists():
        with open(file, "rb") as f:
            data = tomllib.load(f)
    elif path is not None:
        raise FileNotFoundError(f"config file {path} does not exist")
    data.update({k: v for k, v in overrides.items() if v is not None})
    return CollectorConfig.model_validate(data)
