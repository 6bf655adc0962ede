"""Learned policies: read safely (safety, load), fed the observations they expect
(observation, gym_observation), exported from training (export)."""
