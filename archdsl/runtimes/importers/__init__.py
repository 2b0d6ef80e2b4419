"""Weight importers: reference checkpoints (other projects' tensor names) to canonical weights."""
