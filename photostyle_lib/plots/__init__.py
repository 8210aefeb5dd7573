"""Figure grids laid out like the paper's figures, and mask views (Figures 3, 8)."""
