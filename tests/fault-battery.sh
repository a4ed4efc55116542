#!/usr/bin/env bash
# The full fault battery (docs/reliability.md): the embedded broker, the processor(s) and the edge as separate
# processes on loopback; kills, bounces, broker faults, poison and floods; every feed checked against the model.
# Prints the table, writes it to docs/bench/fault-battery.md, and exits non-zero if any held scenario lost,
# duplicated or reordered anything. Extra arguments go to the runner (e.g. --scenario edge-restart, --short).
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build tests/Pipeline.FaultBattery -c Release -warnaserror --nologo -v quiet
dotnet tests/Pipeline.FaultBattery/bin/Release/net10.0/Pipeline.FaultBattery.dll --output docs/bench/fault-battery.md "$@"
