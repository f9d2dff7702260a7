"""ProMISe seed ensembles on the cross-validation folds of ``benchmarks.results``.

``merge`` writes, for every fold, one :class:`~monai_sam.promise.ProMISeEnsemble` checkpoint whose members are the
fold heads of the given work dirs (each trained by ``benchmarks.results --methods promise`` with its own
``--overrides '{"promise": {"seed": S}}'``; same folds, same recipe), with the first member's ``trained.json``, so
that ``benchmarks.results`` scores the ensemble through the bundle's own configs without training again::

    PYTHONPATH=. python scripts/research/promise_ensemble.py merge runs/exp_pm_ens runs/exp_pm runs/exp_pm_s1
    python -m benchmarks.results --part val --work_dir runs/exp_pm_ens --methods promise \\
        --overrides '{"promise": {"network_def#_target_": "monai_sam.promise.ProMISeEnsemble",
                                  "network_def#members": 2}}'

Journal: the promise bundle's ``docs/experiments.md``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import fire
import torch

from monai_sam.promise.ensemble import ensemble_checkpoint
from monai_sam.utils import atomic_write_text


def merge(out: str, *members: str, folds: int = 5) -> None:
    """``out/promise/fold<f>/ckpt/model.pt``: the ensemble of ``members``' fold-``f`` heads, for every fold."""
    if len(members) < 2:
        raise ValueError("give the output work dir and at least two member work dirs")
    for fold in range(folds):
        heads = [Path(m) / "promise" / f"fold{fold}" for m in members]
        records = [json.loads((h / "trained.json").read_text()) for h in heads]
        if any((r["fit"], r["val"]) != (records[0]["fit"], records[0]["val"]) for r in records):
            raise ValueError(f"fold {fold}: the members were trained on other videos: {records}")
        target = Path(out) / "promise" / f"fold{fold}"
        (target / "ckpt").mkdir(parents=True, exist_ok=True)
        torch.save(ensemble_checkpoint([h / "ckpt" / "model.pt" for h in heads]), target / "ckpt" / "model.pt")
        shutil.copy(heads[0] / "trained.json", target / "trained.json")
        record = {"members": list(members), "best_epochs": [r["best_epoch"] for r in records]}
        atomic_write_text(target / "members.json", json.dumps(record))
        print(f"fold {fold}: {record}")


if __name__ == "__main__":
    fire.Fire({"merge": merge})
