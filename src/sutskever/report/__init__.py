"""Tables, plots and RESULTS.md sections (depends on nothing but the run files)."""
