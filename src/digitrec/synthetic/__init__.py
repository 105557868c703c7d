"""Seeded renderings for evaluation and training: photo-like digits, strips of digits."""
