"""Reading trial and study folders, comparison tables with confidence intervals, plots, per-example errors.

Modules (each imports pandas / scipy / matplotlib / rich inside its functions):
  reader       trial and study folders -> TrialRecord objects and one pandas row per trial
  stats        mean, std, Welch's t confidence interval and p-value
  compare      one row per group (variant, hyper-parameter value, ...) and its table renderings
  plots        curves, Pareto front, hyper-parameter sensitivity, error EDF
  per_example  which validation examples each variant gets wrong, hardest examples, image grid
  show         one trial's config, per-epoch curve and final figures
"""
