"""Copy this machine's stored events to the household database.

The local database stays the first store (the collector's acknowledged
batches are there, crash-safe); forwarding reads each raw table by its
row id beyond the highest id the household already holds for this
machine, so after a crash or an outage it resumes where the household
stopped, and a batch sent twice is stored once (ON CONFLICT DO NOTHING on
(machine, monitor, local id)). Runs in the agent's worker thread.
"""

from __future__ import annotations

import json
import pwd

from ..schema import RAW_MODELS, AuditLog
from .store import HouseholdStore

FORWARD_BATCH = 5000
_SKIP = {"id", "uid", "time", "ts_ns", "batch_id"}


def forward_events(store: HouseholdStore, marks: dict[str, int], batch: int = FORWARD_BATCH) -> int:
    """Send at most ``batch`` rows per monitor; returns how many were sent.
    ``marks`` (monitor -> last id sent) is filled from the household first."""
    sent = 0
    for monitor, model in RAW_MODELS.items():
        if monitor not in marks:
            marks[monitor] = store.last_forwarded(monitor)
        rows = list(model.select().where(model.id > marks[monitor]).order_by(model.id)
                    .limit(batch).dicts())
        if not rows:
            continue
        store.forward_events(monitor, [
            (r["id"], r["uid"], r["time"],
             json.dumps({k: v for k, v in r.items() if k not in _SKIP}, default=str))
            for r in rows])
        marks[monitor] = rows[-1]["id"]
        sent += len(rows)
    return sent


def _name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def forward_audit(store: HouseholdStore, marks: dict[str, int], batch: int = FORWARD_BATCH) -> int:
    """This machine's audit log (local parents' actions, tamper reports) into
    the household audit, marked with the machine; resumes like the events."""
    if "audit" not in marks:
        marks["audit"] = store.last_forwarded_audit()
    rows = list(AuditLog.select().where(AuditLog.id > marks["audit"]).order_by(AuditLog.id).limit(batch))
    if rows:
        store.forward_audit([(r.id, r.time, r.actor_uid, _name(r.actor_uid), r.action, r.target,
                              r.old_value, r.new_value) for r in rows])
        marks["audit"] = rows[-1].id
    return len(rows)
