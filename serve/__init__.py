"""HTTP serving of zoo generators (any ch_mul variant, with its measured speedup)."""
