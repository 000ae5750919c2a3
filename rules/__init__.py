"""The rules engine: norm KPIs, verdicts against the norms, alerts (issue #5)."""
