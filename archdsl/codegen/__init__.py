"""Code generators, one module per target framework; see `registry` for lookup by name."""
