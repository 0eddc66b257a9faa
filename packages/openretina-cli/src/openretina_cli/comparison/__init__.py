"""`openretina compare`: read finished runs and sweeps, and lay them side by side."""
