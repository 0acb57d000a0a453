"""Reports rendered from the results store only: leaderboards (:mod:`.aggregate`, drawn
by :mod:`.render`), importance per column, figures, the HTML report, claim verdicts."""
