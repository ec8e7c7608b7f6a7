"""evals: see DESIGN.md."""
