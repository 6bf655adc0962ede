"""Integrations with training libraries: `verifier.integrations.sb3` for Stable-Baselines3."""
