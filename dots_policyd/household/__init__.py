"""Household mode: several machines, one PostgreSQL, one policy and one
budget per child (issue 17).

* :mod:`.identity` — this machine's id, name and household file;
* :mod:`.sql` — the household tables, row-level security, NOTIFY (migration 4);
* :mod:`.roles` — the owner's setup: schema, per-machine roles, removal;
* :mod:`.store` — the household database as one machine's role sees it;
* :mod:`.journal` — local, crash-safe screen-time intervals;
* :mod:`.budget` — household-wide used seconds (union of intervals);
* :mod:`.agent` — the daemon's loop: sync, LISTEN, apply, reconcile.
"""
