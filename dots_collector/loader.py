"""``python -m dots_collector.loader``: compile, attach and pin BPF objects,
then exit.

The collector runs this as a child process for the objects that are not
pinned yet (pinning.py): bcc and its LLVM, about 200 MiB resident while
compiling, live only here, and the long-running collector opens what was
pinned with libbpf alone. The request comes as JSON on stdin: the
collector's configuration, the pin directory and the objects to load with
their fingerprints. Exit status 0 when every one was pinned; on a failure
nothing of this run stays pinned.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from dots_common.logs import setup_logging

from .config import CollectorConfig
from .objects import bpf_objects
from .pinning import pin_object, unpin

log = logging.getLogger("dots.collector.loader")


def load(config: CollectorConfig, pin_dir: Path, wanted: dict[str, str]) -> None:
    done: list[Path] = []
    try:
        for obj in bpf_objects(config):
            if obj.name not in wanted:
                continue
            started = time.monotonic()
            obj.build()
            links = pin_object(obj, pin_dir / obj.name, wanted[obj.name])
            done.append(pin_dir / obj.name)
            log.info("%s %s compiled, attached and pinned (%d links) in %.1f s", obj.kind,
                     obj.name, links, time.monotonic() - started)
    except BaseException:
        for directory in done + [pin_dir / name for name in wanted]:
            try:
                unpin(directory)
            except OSError:
                pass
        raise


def main() -> int:
    request = json.load(sys.stdin)
    setup_logging(request.get("log_level", "info"))
    config = CollectorConfig.model_validate(request["config"])
    try:
        load(config, Path(request["pin_dir"]), request["objects"])
    except Exception as e:
        log.error("loading failed: %s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
