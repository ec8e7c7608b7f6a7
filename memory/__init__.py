"""memory: see DESIGN.md."""
