"""Bring-your-own data and models, measured: ``shap_tree`` against KernelSHAP on the same
rows of a 200-tree ensemble, and loading a ~100 MB Parquet table through ``table_file``.

Run: ``python benchmarks/own_data_and_models.py [--rows 1000] [--kernel-rows 1000]``.

* TreeSHAP (``shap_tree``, exact, tree-path-dependent) and KernelSHAP (``shap_kernel``
  with the harness's defaults: k-means background of 50, shap's ``auto`` samples) explain
  the same rows of the same XGBoost model (200 trees, depth 6) on synthetic_tabular (16
  features); both through the harness's explainer classes, timed in one process, side by
  side. ``--kernel-rows`` below ``--rows`` times KernelSHAP on the first rows only and
  scales its time to all rows (said in the output).
* A Parquet file of about 100 MB (random numbers, a text category, missing values) is
  written, then loaded by ``table_file`` in a fresh process: its wall time and the peak
  resident memory of that process (``resource.getrusage``) are printed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

warnings.filterwarnings("ignore")

from harness.datasets import dataset_registry  # noqa: E402
from harness.explainers import ExplainContext, explainer_registry  # noqa: E402
from harness.models import model_registry  # noqa: E402


def tree_against_kernel(rows: int, kernel_rows: int) -> None:
    dataset = dataset_registry.get("synthetic_tabular")(n_samples=2 * rows + 2000).load(seed=0)
    model = model_registry.get("xgboost")(n_estimators=200, max_depth=6).fit(
        dataset, 0, torch.device("cpu")
    )
    chosen = np.arange(rows)
    inputs = dataset.x_test[chosen]
    targets = model.predict(inputs)
    seconds = {}
    for name, count in (("shap_tree", rows), ("shap_kernel", kernel_rows)):
        explainer = explainer_registry.get(name)()
        context = ExplainContext(dataset, 0, chosen[:count])
        explainer.explain(model, inputs[:1], targets[:1], context)  # warm-up
        started = time.perf_counter()
        explainer.explain(model, inputs[:count], targets[:count], context)
        seconds[name] = (time.perf_counter() - started) * rows / count
    scaled = "" if kernel_rows == rows else f" (measured on {kernel_rows} rows, scaled)"
    print(f"xgboost, 200 trees, {dataset.n_features} features, {rows} rows:")
    print(f"  shap_tree   {seconds['shap_tree']:10.2f} s")
    print(f"  shap_kernel {seconds['shap_kernel']:10.2f} s{scaled}")
    print(f"  KernelSHAP / TreeSHAP = {seconds['shap_kernel'] / seconds['shap_tree']:,.0f}×")


LOAD = """
import json, resource, sys, time
from pathlib import Path
from harness.datasets import dataset_registry
started = time.perf_counter()
data = dataset_registry.get("table_file")(path=Path(sys.argv[1]), target="y").load(0)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mib": peak, "rows": len(data.x_train) +
                  len(data.x_test), "features": data.n_features}))
"""


def parquet_load(megabytes: int) -> None:
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = megabytes * 1024 * 1024 // (8 * 10)
    frame = pd.DataFrame(rng.normal(size=(rows, 10)), columns=[f"x{i}" for i in range(10)])
    frame.loc[rng.random(rows) < 0.05, "x3"] = np.nan
    frame["site"] = rng.choice(["north", "south", "east", "west"], rows)
    frame["y"] = (frame.x0 + rng.normal(size=rows) > 0).astype(int)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "table.parquet"
        frame.to_parquet(path, compression=None)
        size = path.stat().st_size / 2**20
        del frame
        out = subprocess.run([sys.executable, "-c", LOAD, str(path)], capture_output=True,
                             text=True, check=True)  # fmt: skip
        result = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"table_file, Parquet {size:.0f} MiB ({result['rows']:,} rows → "
        f"{result['features']} features): {result['seconds']:.1f} s, peak memory "
        f"{result['peak_mib']:,.0f} MiB (the whole process, Python and torch included)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--kernel-rows", type=int, default=1000)
    parser.add_argument("--parquet-mb", type=int, default=100)
    args = parser.parse_args()
    tree_against_kernel(args.rows, min(args.kernel_rows, args.rows))
    parquet_load(args.parquet_mb)


if __name__ == "__main__":
    main()
