"""``python -m recbench.bench`` is ``recbench-bench`` (for a checkout whose console scripts are not installed)."""

from recbench.bench.cli import main

main()
