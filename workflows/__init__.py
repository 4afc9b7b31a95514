"""Temporal workflow definitions: deterministic code only."""
