"""`make bench`: performance figures as ratios measured in one run on the same data (DESIGN §7)."""
