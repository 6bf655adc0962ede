"""Certified answers on explicit models: reachability probabilities (reach), reward optima
(optimum) and their exact re-derivation (exact), asked through one handle per model (query)."""
