"""Make the files of the bring-your-own example: a messy clinical-style table and two
models trained outside the harness on it (a torch network and an XGBoost booster).

Run from this folder: ``python make_files.py``, then ``xai-harness run suite.toml``.

``patients.csv``: 600 patients; the outcome depends on age, systolic blood pressure and
smoking only (the suite declares that as ground-truth importance). It has what real
tables have: thousands separators ("1,250"), booleans as words, 0 meaning "not measured"
for cholesterol, an identifier column.

The models are fit on the features *as the harness encodes them* — loaded through
``table_file`` with the suite's parameters — on the training split of seed 0, the seed
the suite runs (a given model must not have seen the test split it is scored on).
"""

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xgboost
from torch import nn

from harness import dataset_registry

HERE = Path(__file__).resolve().parent


def write_table(path: Path, rows: int = 600) -> None:
    rng = np.random.default_rng(0)
    age = rng.integers(30, 90, rows)
    systolic = rng.normal(135, 20, rows).round()
    smoker = rng.random(rows) < 0.3
    steps = rng.integers(500, 15000, rows)  # irrelevant
    cholesterol = np.where(rng.random(rows) < 0.1, 0, rng.normal(200, 35, rows).round())
    risk = 0.06 * (age - 60) + 0.04 * (systolic - 135) + 1.2 * smoker
    outcome = (risk + rng.logistic(size=rows) > 0.4).astype(int)
    pd.DataFrame(
        {
            "patient_id": [f"P{i:04d}" for i in range(rows)],
            "age": age,
            "systolic_bp": systolic,
            "smoker": np.where(smoker, "TRUE", "FALSE"),
            "daily_steps": [f"{s:,}" for s in steps],
            "cholesterol": cholesterol,
            "outcome": outcome,
        }
    ).to_csv(path, index=False)


class Network(nn.Module):
    """An MLP that standardises its inputs itself (so the suite declares no preprocessing)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.layers = nn.Sequential(nn.Linear(len(mean), 32), nn.ReLU(), nn.Linear(32, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers((x - self.mean) / self.std)


def main() -> None:
    write_table(HERE / "patients.csv")
    data = dataset_registry.get("table_file")(
        path=HERE / "patients.csv", target="outcome", drop=["patient_id"],
        missing_values={"cholesterol": [0]},
    ).load(seed=0)  # fmt: skip
    print("features as the harness encodes them:", ", ".join(data.feature_names))

    torch.manual_seed(0)
    network = Network(data.x_train.mean(axis=0), data.x_train.std(axis=0) + 1e-8)
    x, y = torch.as_tensor(data.x_train), torch.as_tensor(data.y_train)
    optimiser = torch.optim.Adam(network.parameters(), lr=1e-2)
    for _ in range(300):
        optimiser.zero_grad()
        nn.functional.cross_entropy(network(x), y).backward()
        optimiser.step()
    batch = torch.export.Dim("batch")
    program = torch.export.export(network.eval(), (x[:4],), dynamic_shapes=({0: batch},))
    torch.export.save(program, HERE / "network.pt2")

    booster = xgboost.XGBClassifier(n_estimators=100, max_depth=3, random_state=0)
    booster.fit(data.x_train, data.y_train)
    booster.save_model(HERE / "booster.json")
    print("wrote patients.csv, network.pt2, booster.json")


if __name__ == "__main__":
    main()
