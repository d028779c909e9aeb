"""How long reading a tenant's settings takes on the hot path: ``TenantSettings.load`` of a
stored row (once per directory lookup) and an attribute read (per use).

    python scripts/bench_settings.py
"""

from __future__ import annotations

import timeit

from tenants.settings import TenantSettings

N = 200_000


def main() -> None:
    stored = TenantSettings().to_dict()
    with_rules = {**stored, "anomaly_rules": [
        {"name": f"r{i}", "metric": "token_requests", "limit": 100, "window": 60,
         "action": "suspend"} for i in range(3)]}
    settings = TenantSettings.load(stored, tenant="bench")
    for label, fn in (
            ("load a stored row", lambda: TenantSettings.load(stored, tenant="bench")),
            ("load a row with 3 anomaly rules",
             lambda: TenantSettings.load(with_rules, tenant="bench")),
            ("read max_token_lifetime", lambda: settings.max_token_lifetime)):
        best = min(timeit.repeat(fn, number=N, repeat=5)) / N
        print(f"{label:34s} {best * 1e6:8.3f} µs")


if __name__ == "__main__":
    main()
