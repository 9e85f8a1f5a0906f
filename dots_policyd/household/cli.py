"""dots-household: set up the shared household database (run as its owner,
e.g. sudo -u postgres dots-household ...).

  dots-household init OWNER_URL
  dots-household add-machine OWNER_URL MACHINE_ID NAME [--parents] [--host H --sslmode verify-full]
                             [--write FILE] [--member ACCOUNT=MEMBER ...]
  dots-household remove-machine OWNER_URL MACHINE_ID
  dots-household prune OWNER_URL [--days 30]

OWNER_URL e.g. postgresql:///dots?host=/var/run/postgresql
"""

from __future__ import annotations

import argparse
import pwd

from . import roles


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="dots-household", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    i = sub.add_parser("init")
    i.add_argument("owner_url")
    a = sub.add_parser("add-machine")
    a.add_argument("owner_url")
    a.add_argument("machine_id")
    a.add_argument("name")
    a.add_argument("--parents", action="store_true", help="parents change policies on this machine")
    a.add_argument("--host", help="the server's address as the machine reaches it")
    a.add_argument("--sslmode", help="verify-full for a remote server")
    a.add_argument("--write", metavar="FILE", help="write the machine's household file here")
    a.add_argument("--member", action="append", default=[], metavar="ACCOUNT=MEMBER")
    pr = sub.add_parser("prune", help="delete forwarded events older than --days (daily from cron)")
    pr.add_argument("owner_url")
    pr.add_argument("--days", type=int, default=30)
    r = sub.add_parser("remove-machine")
    r.add_argument("owner_url")
    r.add_argument("machine_id")
    args = p.parse_args(argv)
    if args.command == "init":
        print(f"household database at schema version {roles.init(args.owner_url)}")
    elif args.command == "add-machine":
        role, password = roles.add_machine(args.owner_url, args.machine_id, args.name, args.parents)
        url = roles.machine_url(args.owner_url, role, password, args.host, args.sslmode)
        members = dict(m.split("=", 1) for m in args.member)
        if args.write:
            try:
                pw = pwd.getpwnam("dots-policyd")
                owner = (pw.pw_uid, pw.pw_gid)
            except KeyError:
                owner = None
            roles.write_config(args.write, url, args.name, machine_id=args.machine_id,
                               members=members, owner=owner)
            print(f"machine {args.name} added as role {role}; household file {args.write}")
        else:
            print(f"machine {args.name} added as role {role}; its URL (keep it secret):\n{url}")
    elif args.command == "prune":
        print(f"{roles.prune_events(args.owner_url, args.days)} events older than {args.days} days deleted")
    else:
        roles.remove_machine(args.owner_url, args.machine_id)
        print(f"machine {args.machine_id} removed (it can no longer log in; its history stays)")


if __name__ == "__main__":
    main()
