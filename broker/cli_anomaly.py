"""``tessera anomaly-rules``: a tenant's anomaly rules (see ``broker.anomaly``).

    tessera anomaly-rules set  --tenant T --rules-file F   (a JSON list of rules, or
                                                            {"rules": [...]}; [] clears)
    tessera anomaly-rules show --tenant T
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from broker.admin.models.runtime import AnomalyRulesPut
from broker.admin.services import anomaly as ops

COLUMNS = ("tenant", "rules")


def cmd_anomaly_rules(args: argparse.Namespace) -> int:
    from broker.cli import _run, body  # broker.cli imports this module: import them late

    if args.action == "show":
        return _run(args, lambda b: ops.get_rules(b, args.tenant), COLUMNS)
    try:
        raw = json.loads(Path(args.rules_file).read_text())
    except (OSError, ValueError) as exc:
        print(f"error: {args.rules_file}: {exc}", file=sys.stderr)
        return 2
    if isinstance(raw, dict) and "rules" in raw:
        raw = raw["rules"]
    rules = body(AnomalyRulesPut, {"rules": raw})
    return _run(args, lambda b: ops.set_rules(b, args.tenant, rules(b)), COLUMNS)


def add_parser(sub: Any) -> None:
    """Add ``anomaly-rules`` to the ``tessera`` subcommands (``sub``: argparse's subparsers)."""
    p = sub.add_parser("anomaly-rules", help="per-agent rate rules that suspend an agent")
    asub = p.add_subparsers(dest="action", required=True)
    put = asub.add_parser("set", help="replace the tenant's rules")
    put.add_argument("--rules-file", required=True,
                     help='JSON: [{"name": "burst", "metric": "token_requests", "limit": 100, '
                          '"window": 60}]')
    asub.add_parser("show")
    for sp in asub.choices.values():
        sp.add_argument("--tenant", required=True)
        sp.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_anomaly_rules)
