"""Model families, one file per paper family; each registers its variants with a ModelCard."""
