"""The evaluation's figure: reliability diagram and risk-coverage curves (matplotlib, lazily)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ensemble_nb.eval.harness import ENSEMBLE, SIGNALS, Report
from ensemble_nb.eval.metrics import reliability, risk_coverage


def save_plot(report: Report, path: Path | str, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display on a server; the figure only goes to a file
    import matplotlib.pyplot as plt

    keys = [k for k in report.auroc if k != "oracle"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    ax1.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    for k in keys:
        conf = [r[k]["combined"] for r in report.rows]
        ok = [r[k]["correct"] for r in report.rows]
        bins = reliability(conf, ok, bins=5)
        ax1.plot([b[0] for b in bins], [b[1] for b in bins], marker="o", label=f"{k} (ECE {report.ece[k]:.2f})")
    ax1.set(xlabel="combined confidence (calibrated)", ylabel="accuracy", title="Reliability (out of sample)",
            xlim=(0, 1), ylim=(0, 1))
    ax1.legend(fontsize=8)
    ens_ok = [r[ENSEMBLE]["correct"] for r in report.rows]
    for s in SIGNALS:
        vals: list[Any] = [r[ENSEMBLE][s] for r in report.rows]
        cov, risk = risk_coverage(vals, ens_ok)
        ax2.plot(cov, risk, label=f"{s} (AUROC {report.auroc[ENSEMBLE][s]:.2f})",
                 lw=2.2 if s == "combined" else 1.0)
    ax2.set(xlabel="coverage (answers kept, most confident first)", ylabel="error rate of kept answers",
            title="Risk-coverage of the ensemble's answer", xlim=(0, 1), ylim=(0, 1))
    ax2.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
