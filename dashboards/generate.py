#!/usr/bin/env python3
"""Writes Tollgate's Grafana dashboards (the *.json files next to this script).

The dashboards are code: edit the definitions in generator/, then run

    python3 dashboards/generate.py          # rewrite the JSON (here and in helm/tollgate/dashboards)
    python3 dashboards/generate.py --check  # fail if the JSON is not what this writes

and let gateway/tests/dashboards/run.sh prove every query on live data.
Every panel sets its unit, decimals, thresholds, legend and tooltip
explicitly, so no panel depends on one Grafana version's defaults.
Python 3 standard library only.
"""

import json
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the repository

from generator.budgets import budgets_dashboard
from generator.health import health_dashboard
from generator.routing import routing_dashboard
from generator.spend import spend_dashboard
from generator.traffic import traffic_dashboard

HERE = Path(__file__).resolve().parent
# The Helm chart ships the same files as Grafana sidecar ConfigMaps.
CHART = HERE.parent / "helm" / "tollgate" / "dashboards"

DASHBOARDS = {
    "spend.json": spend_dashboard,
    "budgets.json": budgets_dashboard,
    "traffic.json": traffic_dashboard,
    "routing.json": routing_dashboard,
    "health.json": health_dashboard,
}


def render(build):
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv):
    check = "--check" in argv
    stale = []
    for name, build in DASHBOARDS.items():
        want = render(build)
        for path in (HERE / name, CHART / name):
            if check:
                if not path.exists() or path.read_text(encoding="utf-8") != want:
                    stale.append(str(path.relative_to(HERE.parent)))
            else:
                path.write_text(want, encoding="utf-8")
    if stale:
        print("dashboards out of date with generate.py (run python3 dashboards/generate.py): "
              + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
