"""Optimisation helpers: the OM-Pareto gradient balancer of MACB-DF (§3.5, Eq. 21-24).

Example:
    >>> from macbdf.optim import solve_alpha
    >>> solve_alpha(1.0, 1.0, -1.0)
    (0.5, 0.5)
"""
from macbdf.optim.pareto import OMPareto, combine, lambda_orth, pgd_alpha, solve_alpha

__all__ = ["OMPareto", "combine", "lambda_orth", "pgd_alpha", "solve_alpha"]
