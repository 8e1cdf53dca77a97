"""Scaling laws: fit them to training runs, and plan a compute budget with them.

- Kaplan et al. 2020, "Scaling Laws for Neural Language Models", arXiv:2001.08361 (Sections 3-4):
  `fit_kaplan`, `fit_power_law`, `fit_kaplan_joint`.
- Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models", arXiv:2203.15556
  (Section 3, Appendix D): `fit_approach1`, `fit_approach2`, `fit_approach3`, `plan_compute`;
  Approach 3 by the procedure of Besiroglu et al. 2024, "Chinchilla Scaling: A replication
  attempt", arXiv:2404.10102, on their extraction of the paper's data (`chinchilla_runs`).
- Muennighoff et al. 2023, "Scaling Data-Constrained Language Models", arXiv:2305.16264
  (Section 3): `effective_data`, `fit_r_star`, and `plan_compute(..., unique_tokens=U)`.

numpy and scipy only (figures: `sutskever.scaling.plots`, matplotlib; command line:
`sutskever.scaling.cli`).
"""

from sutskever.scaling.chinchilla import (
    HUBER_DELTA,
    Approach1Fit,
    Approach2Fit,
    Approach3Fit,
    Frontier,
    IsoFlopParabola,
    epoch_grid,
    fit_approach1,
    fit_approach2,
    fit_approach3,
    huber_log_objective,
    isoflop_groups,
)
from sutskever.scaling.data_constrained import R_STAR_D, RStarFit, effective_data, fit_r_star
from sutskever.scaling.kaplan import (
    KaplanFit,
    PowerLawFit,
    fit_kaplan,
    fit_kaplan_joint,
    fit_power_law,
)
from sutskever.scaling.laws import ChinchillaLaw, KaplanJointLaw, PowerLaw
from sutskever.scaling.lbfgs import BatchedResult, minimize_batched
from sutskever.scaling.plan import Plan, RepeatedDataPlan, best_under_repetition, plan_compute
from sutskever.scaling.runs import Runs, chinchilla_runs, read_runs
from sutskever.scaling.stats import Estimate

__all__ = [
    "HUBER_DELTA", "R_STAR_D",
    "Runs", "read_runs", "chinchilla_runs",
    "ChinchillaLaw", "KaplanJointLaw", "PowerLaw",
    "Estimate",
    "minimize_batched", "BatchedResult",
    "fit_power_law", "fit_kaplan_joint", "fit_kaplan", "PowerLawFit", "KaplanFit",
    "fit_approach1", "fit_approach2", "fit_approach3", "epoch_grid", "huber_log_objective",
    "isoflop_groups", "Approach1Fit", "Approach2Fit", "Approach3Fit", "Frontier",
    "IsoFlopParabola",
    "effective_data", "fit_r_star", "RStarFit",
    "plan_compute", "best_under_repetition", "Plan", "RepeatedDataPlan",
]
