"""Spatial rules, streaming evaluation and alerts. Empty until the scenarios issue lands."""
