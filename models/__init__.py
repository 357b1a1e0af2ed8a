"""Estimators and metrics: take data, return fitted objects, predictions or numbers. No I/O."""
