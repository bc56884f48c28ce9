"""Deployment helpers that run outside the app: the post-deploy smoke test (azd hook)."""
