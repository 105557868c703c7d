"""A line of handwriting -> digits: lines of ink, candidate cuts, the piece model, the reader."""
