"""``tessera anomaly-rules``: a tenant's anomaly rules (see ``broker.anomaly``).

    tessera anomaly-rules set  --tenant T --rules-file F   (a JSON list of rules, or
                                                            {"rules": [...]}; [] clears)
    tessera anomaly-rules show --tenant T
"""

from __future__ import annotations

import argparse
from typing import Any

from broker.cli.inputs import json_file, shared_options
from broker.cli.transport import Job, op

COLUMNS = ("tenant", "rules")


def cmd_anomaly_rules(args: argparse.Namespace) -> Job:
    if args.action == "show":
        return op("get_anomaly_rules", COLUMNS, tenant=args.tenant)
    raw = json_file(args.rules_file, "--rules-file")
    if isinstance(raw, dict) and "rules" in raw:
        raw = raw["rules"]
    return op("set_anomaly_rules", COLUMNS, tenant=args.tenant, body={"rules": raw})


def add_parser(sub: Any) -> None:
    """Add ``anomaly-rules`` to the ``tessera`` subcommands (``sub``: argparse's subparsers)."""
    p = sub.add_parser("anomaly-rules", help="per-agent rate rules that suspend an agent")
    asub = p.add_subparsers(dest="action", required=True)
    put = asub.add_parser("set", help="replace the tenant's rules")
    put.add_argument("--rules-file", required=True,
                     help='JSON: [{"name": "burst", "metric": "token_requests", "limit": 100, '
                          '"window": 60}]')
    asub.add_parser("show")
    shared_options(asub.choices.values())
    p.set_defaults(func=cmd_anomaly_rules)
