#!/bin/sh
# Every recorded figure of benchmarks/README.md, one after the other, into benchmarks/results/.
# Usage (from the repository root):  sh benchmarks/run_all.sh [PEER_PYTHON]
set -e
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PEER="${1:-${ODEJAC_PEER_PYTHON:-$(python -c 'import sys; sys.path.insert(0, "benchmarks"); from common import DEFAULT_PEER_PYTHON as p; print(p)')}}"
R=benchmarks/results
mkdir -p "$R"
nproc > "$R/machine.txt"; grep -m1 'model name' /proc/cpuinfo >> "$R/machine.txt"; date -u >> "$R/machine.txt"
python benchmarks/vs_torchdiffeq.py --peer-python "$PEER" --json "$R/vs_none.json"          | tee "$R/vs_none.txt"
python benchmarks/vs_torchdiffeq.py --peer-python "$PEER" --reg condition --json "$R/vs_condition.json" | tee "$R/vs_condition.txt"
python benchmarks/vs_torchdiffeq.py --peer-python "$PEER" --batch-size 32 --json "$R/vs_none_b32.json" | tee "$R/vs_none_b32.txt"
python benchmarks/vs_torchdiffeq.py --peer-python "$PEER" --batch-size 32 --reg condition --json "$R/vs_condition_b32.json" | tee "$R/vs_condition_b32.txt"
python benchmarks/overhead.py --processes 7 --json "$R/overhead.json"                                   | tee "$R/overhead.txt"
python benchmarks/profile_epoch.py --json "$R/profile_none.json"                             | tee "$R/profile_none.txt"
python benchmarks/profile_epoch.py --reg condition --json "$R/profile_condition.json"        | tee "$R/profile_condition.txt"
python benchmarks/scaling.py --peer-python "$PEER"                                           | tee "$R/scaling.txt"   # + scaling.{json,csv,md,png}; diffrax from $ODEJAC_JAX_PYTHON
python benchmarks/startup.py --json "$R/startup.json"                                        | tee "$R/startup.txt"
python benchmarks/ab_commits.py --base 8b02728                                               | tee "$R/ab_none.txt"
python benchmarks/ab_commits.py --base 8b02728 --reg condition                               | tee "$R/ab_condition.txt"
python benchmarks/vs_diffrax.py --reg none condition --json "$R/vs_diffrax.json"            | tee "$R/vs_diffrax.txt"
python benchmarks/vs_diffrax.py --reg none condition --dtype float32 --rounds 2 --first-epochs 0 --json "$R/vs_diffrax_float32.json" | tee "$R/vs_diffrax_float32.txt"
python benchmarks/kernels.py --base 3de02f3 --json "$R/kernels.json"                        | tee "$R/kernels.txt"
python benchmarks/floor_budget.py --json "$R/floor_budget.json"                             | tee "$R/floor_budget.txt"
python benchmarks/profile_epoch.py --clock cpu --batch-size 4096 --n-train 8192 --warmup 2 --epochs 4 --json "$R/profile_b4096_cpu.json" | tee "$R/profile_b4096_cpu.txt"
python benchmarks/profile_epoch.py --clock cpu --batch-size 256 --n-train 8192 --warmup 2 --epochs 4 --json "$R/profile_b256_cpu.json" | tee "$R/profile_b256_cpu.txt"
python benchmarks/profile_epoch.py --clock cpu --width 256 --warmup 2 --epochs 4 --json "$R/profile_w256_cpu.json" | tee "$R/profile_w256_cpu.txt"
python benchmarks/ab_commits.py --base 3de02f3 --clock cpu                                   | tee "$R/ab_issue11_none.txt"
python benchmarks/ab_commits.py --base 3de02f3 --clock cpu --reg condition                   | tee "$R/ab_issue11_condition.txt"
