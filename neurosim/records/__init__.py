"""Typed result records of the protocols, which their ``analysis/`` modules accept."""
