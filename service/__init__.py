"""The FastAPI service: KPIs, alerts, manual entries, reports (issue #6); the local demo."""
