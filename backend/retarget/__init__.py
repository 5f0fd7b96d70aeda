"""Retargeting a Take onto a character's own shape keys (character-aware solve)."""
