"""HTML reports: the alignment QA report and the demo report."""
