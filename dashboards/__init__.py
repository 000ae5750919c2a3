"""Grafana dashboards as code, built from the schema and the signal catalogue (issue #7)."""
