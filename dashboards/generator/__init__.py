"""The definitions generate.py writes the dashboards from."""
