"""Hitball: mqantserver's Hitball game (filled in by its own commit)."""
