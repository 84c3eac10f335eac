"""``recbench-bench``: recbench's own train and eval steps against PyTorch references of the same networks.

* :mod:`recbench.bench.cases` — the benchmarked networks, their inputs and batch sizes;
* :mod:`recbench.bench.torch_refs` — PyTorch modules of those networks, written from recbench's model code;
* :mod:`recbench.bench.weights` — copies a recbench model's weights into its PyTorch reference (the logit test);
* :mod:`recbench.bench.worker` — one measurement in one fresh process, printed as one JSON line;
* :mod:`recbench.bench.cli` — the orchestration: alternating rounds, medians, ratios, table and JSON.

Nothing here is imported by the rest of recbench, and torch is imported only by the PyTorch worker, the
references and the weight copy, so the package needs the ``torch`` extra only when it runs.
"""
