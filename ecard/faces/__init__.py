"""Face models, photo loading and ID-photo matching (no Flask, no database)."""
