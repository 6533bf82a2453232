#!/usr/bin/env bash
# Rebuilds results/<study>/README.md (comparison table, figures, hardest examples) and results/<study>/figures/
# from the trial folders a `workbench study run` left in results/<study>/. Usage, from the repository root:
#   bash results/regenerate.sh STUDY "MACHINE DESCRIPTION" "PLOT KINDS" "NOTE" ["NOTE"...]
# e.g. PLOT KINDS "curves pareto edf"; the hardest-examples grid is drawn whenever predictions exist.
# MARGINALS="hp.recipe.epochs hp.recipe.dropout" adds one table per field, pooling the grid's other points.
set -euo pipefail
study=$1 machine=$2; read -r -a kinds <<< "$3"; shift 3
notes=(); for note in "$@"; do notes+=(--note "$note"); done
dir=results/$study
wb=${WORKBENCH:-.venv/bin/workbench}
mkdir -p "$dir/figures"
"$wb" results compare "$dir" --format markdown -o "$dir/README.md" --machine "$machine" "${notes[@]}"
{
  for field in ${MARGINALS:-}; do
    echo
    "$wb" results compare "$dir" --by "$field" --format markdown | sed -n '/^| /,$p' | grep -v '^- '
    echo "\`workbench results compare $dir --by $field\` (other grid points pooled as replicates)"
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
