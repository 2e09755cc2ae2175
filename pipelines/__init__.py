"""Clinic outcomes pipeline: naltrexone exports in, response categories, marts and dashboards out."""
