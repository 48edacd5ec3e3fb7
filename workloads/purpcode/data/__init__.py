"""Data sets of a run: the row schema shared by every stage, and the shipped rules corpus."""
