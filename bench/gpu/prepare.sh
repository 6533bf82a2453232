#!/usr/bin/env bash
# Run here, on CPU, before a GPU session: the wheels the GPU machine lacks, for its Python 3.12, into .whl/, and the
# hymenoptera photos into .gpu-data/ (both git-ignored, both named in the device tool's `carry`), then a check that
# they and the working tree stay under 60 MiB (the tool carries at most 64 MiB a call).
#
#   bash bench/gpu/prepare.sh            # then, with the device tool: run `bash bench/gpu/run.sh`, carry [".whl", ".gpu-data"]
#
# Versions are this checkout's .venv's, so the GPU runs what the tests ran. ray's wheel (79 MB) is re-packed without
# what a study never loads there: the Java jar (32 MB, Ray's Java API), the dashboard's web client (include_dashboard
# is off), rllib, serve and llm.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
WHL=.whl
DATA=.gpu-data
LIMIT_MIB=60
# Missing on the GPU image (DEVELOPERS.md / the device tool's KINDS.md list what it has), with what they need there.
PLATFORM="ray pydantic-core rpds-py"
PURE="pydantic annotated-types typing-inspection optuna colorlog jsonschema jsonschema-specifications referencing yacs termcolor"
SOURCE_ONLY="fvcore iopath"  # published as sdists only: built here into pure-Python wheels

version() {
  "$PY" -m pip show "$1" 2>/dev/null | awk '/^Version:/ {print $2}' | grep . || { echo "prepare.sh: $1 is not installed in $PY's environment (make install)" >&2; exit 2; }
}

rm -rf "$WHL" && mkdir -p "$WHL"
download=("$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.12
          --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
          --platform any -d "$WHL")
for name in $PLATFORM $PURE; do
  "${download[@]}" "$name==$(version "$name")"
done
for name in $SOURCE_ONLY; do
  "$PY" -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$WHL" "$name==$(version "$name")"
done
"$PY" bench/gpu/repack_ray.py "$WHL"/ray-*.whl

rm -rf "$DATA" && mkdir -p "$DATA"
cp -r ../shared/datasets/hymenoptera "$DATA/hymenoptera"

tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r du -cb 2>/dev/null | tail -n 1 | cut -f1)
wheels=$(du -sb "$WHL" | cut -f1)
data=$(du -sb "$DATA" | cut -f1)
total=$((tree + wheels + data))
printf 'working tree %.1f MiB + wheels %.1f MiB (%d) + data %.1f MiB = %.1f MiB (limit %d MiB)\n' \
  "$(echo "$tree / 1048576" | bc -l)" "$(echo "$wheels / 1048576" | bc -l)" "$(ls "$WHL" | wc -l)" \
  "$(echo "$data / 1048576" | bc -l)" "$(echo "$total / 1048576" | bc -l)" "$LIMIT_MIB"
if (( total > LIMIT_MIB * 1048576 )); then
  echo "prepare.sh: over $LIMIT_MIB MiB: the device tool would refuse the call" >&2
  exit 1
fi
