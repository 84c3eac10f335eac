"""The analysis wing: run directories in, tables and figures out (never wandb; the run directory is the truth).

``collect`` (one row per run keyed by its overrides; ``recbench-collect``), ``stats`` (mean and 95 % CI over seeds,
bootstrap), ``solution_time`` and ``challenge`` (Kar et al. 2019's per-image analyses), ``depth`` (test-time
iterations from ``recbench-eval`` results), ``plots`` (shared drawing helpers), ``kar`` and ``figures`` (one
render function per experiment; ``recbench-figures``).
"""
