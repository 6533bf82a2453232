"""Reading trial and study folders, comparison tables with confidence intervals, plots, per-example errors.

Modules by job, each importing only those above it (pandas / scipy / matplotlib / rich inside its functions):
  metrics          the one table of metric and cost names, labels, display scaling and which way is better
  stats            mean, std, Welch's t confidence interval and p-value
  format           text of numbers: significant digits, ranges, durations, rates, p-values, mean ± std
  records          TrialRecord and StudyRecord: a trial and a study as the results room sees them
  summary          trials from summary.csv, for a study folder without trial folders (a clone)
  reader           trial and study folders -> records (the file names and statuses are workbench.trialdir's)
  groups           grouping trials by variant, hyper-parameter or config path, in natural order
  compare          one row per group: mean ± std, Δ to a baseline with Welch CI and p (numbers only)
  tables           a comparison as a rich table, markdown, csv or json
  analysis         what each plot shows, as data frames and dataclasses (curves, Pareto, sensitivity, EDF)
  figures          matplotlib (headless), colours, saving
  plots            draws the analysis: curves, Pareto front, hyper-parameter sensitivity, error EDF
  per_example      which validation examples each variant gets wrong, hardest examples
  error_tables     the hardest-examples and per-group tables
  error_figures    the hardest images as a grid, the wrong-prediction matrix
  search_analysis  architecture searches: Pareto fronts, good ranges of each choice (pycls bootstrap)
  show             one trial's config, per-epoch curve and final figures
  tb               TensorBoard: the command, and event files rebuilt from metrics.jsonl
"""
