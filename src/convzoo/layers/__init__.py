"""Building blocks, one concept per file, usable in any network."""
