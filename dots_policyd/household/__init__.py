"""Household mode: several machines, one PostgreSQL, one policy and one
budget per child (issue 17). Each machine keeps its local database (the
first store, and what it enforces from when the network is gone); the
household database is shared.

* :mod:`.identity` — this machine's id, name and household file (checked: private, TLS);
* :mod:`.sql` — the household tables, row-level security, NOTIFY (migration 4);
* :mod:`.roles` / :mod:`.cli` — the owner's setup (``dots-household``): schema,
  per-machine roles, removal, pruning;
* :mod:`.store` — the household database as one machine's role sees it;
* :mod:`.journal` — local, crash-safe screen-time intervals;
* :mod:`.budget` — household-wide used seconds (union of intervals), granted, per-app;
* :mod:`.forward` — events and the local audit copied to the household;
* :mod:`.agent` — the daemon's loop: LISTEN, sync, apply, reconcile;
* :mod:`.service` — the Family1 side (status, machines, requests, audit).
"""
