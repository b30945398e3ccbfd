"""Typed result records: the data each protocol hands to its ``analysis/`` module."""
