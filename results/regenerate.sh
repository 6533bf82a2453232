#!/usr/bin/env bash
# Rebuilds results/<study>/README.md (comparison table, figures, hardest examples) and results/<study>/figures/
# from the trial folders a `workbench study run` left in results/<study>/. Usage, from the repository root:
#   bash results/regenerate.sh STUDY "MACHINE DESCRIPTION" "PLOT KINDS" "NOTE" ["NOTE"...]
# e.g. PLOT KINDS "curves pareto edf"; the hardest-examples grid is drawn whenever predictions exist.
# MARGINALS="hp.recipe.epochs hp.recipe.dropout" adds one table per field, pooling the grid's other points.
# MIN_EFFECT=1.0 (percentage points for accuracies) is the difference the tables' seeds needed and equivalence ask
# for (default: a study with adaptive seeds has its own min_effect; otherwise seeds needed are for the observed Δ).
set -euo pipefail
study=$1 machine=$2; read -r -a kinds <<< "$3"; shift 3
notes=(); for note in "$@"; do notes+=(--note "$note"); done
dir=results/$study
wb=${WORKBENCH:-.venv/bin/workbench}
# A clone holds only the committed README.md, summary.csv and figures/: refuse before overwriting them with a
# table that cannot have its curves and hardest examples.
if ! compgen -G "$dir/trials/*/" > /dev/null; then
  echo "error: $dir has no trial folders (trials/<id>/): regenerate.sh rebuilds README.md and figures/ from a run;" \
       "run the study into $dir first (the command is under 'Produced by' in $dir/README.md)" >&2
  exit 2
fi
mkdir -p "$dir/figures"
effect=(); [ -n "${MIN_EFFECT:-}" ] && effect=(--min-effect "$MIN_EFFECT")
"$wb" results compare "$dir" "${effect[@]}" --format markdown -o "$dir/README.md" --machine "$machine" "${notes[@]}"
{
  for field in ${MARGINALS:-}; do
    echo
    "$wb" results compare "$dir" --by "$field" "${effect[@]}" --format markdown | sed -n '/^| /,$p' | grep -v '^- '
    echo "\`workbench results compare $dir --by $field${MIN_EFFECT:+ --min-effect $MIN_EFFECT}\` (other grid points pooled as replicates)"
  done
  echo
  echo "### Figures"
  echo
  for kind in "${kinds[@]}"; do
    "$wb" results plot "$dir" --kind "$kind" -o "$dir/figures/$kind.png" >&2
    echo "![$kind](figures/$kind.png)"
    echo "\`workbench results plot $dir --kind $kind\`"
    echo
  done
  if [ -f "$dir/search.json" ]; then
    "$wb" search analyze "$dir" -o "$dir/figures" > "$dir/.analysis.txt"
    echo "### Search analysis"
    echo
    "${wb%/workbench}/python" - "$dir/search.json" <<'PY'
import json
import sys

s = json.load(open(sys.argv[1]))["sampling"]
rejected = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in s["rejected"].items())
print(f"Sampling ({s['sampler']}): {s['accepted']} architectures from {s['draws']} draws, "
      f"acceptance {s['acceptance_rate']:.1%}; rejected before training: {rejected}.")
PY
    echo
    echo "\`workbench search analyze $dir\`:"
    echo
    grep '^Pareto front' "$dir/.analysis.txt" | sed 's/^/- /'
    echo
    echo "![Pareto against FLOPs](figures/pareto_flops.png) ![Pareto against latency](figures/pareto_latency.png)"
    echo
    echo "Choices whose top-quarter value is agreed by at least 75 % of 2,000 bootstrap resamples (all: figures/ranges.csv):"
    echo
    "${wb%/workbench}/python" - "$dir/figures/ranges.csv" <<'PY'
import sys

import pandas as pd

ranges = pd.read_csv(sys.argv[1])
print("| choice | offered | top-quarter value | confidence | share in top quarter | share sampled |")
print("|:---|:---|:---|---:|---:|---:|")
for r in ranges[ranges.confidence >= 0.75].itertuples():
    print(f"| {r.choice} | {r.offered} | {r.best} | {r.confidence:.0%} | {r.top_share:.0%} | {r.base_share:.0%} |")
PY
    echo
    rm -f "$dir/.analysis.txt"
  fi
  if "$wb" results errors "$dir" --top 10 --format markdown -o "$dir/figures/hardest.png" > "$dir/.hardest.md"; then
    grep -v '^wrote ' "$dir/.hardest.md"
    echo
    echo "\`workbench results errors $dir --top 10 -o $dir/figures/hardest.png\`"
    echo
    echo "![hardest examples](figures/hardest.png)"
  fi
  rm -f "$dir/.hardest.md"
} >> "$dir/README.md"
echo "wrote $dir/README.md and $dir/figures/"
