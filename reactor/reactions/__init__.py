"""Reactions (processors): handlers that run after commits, across processes."""
