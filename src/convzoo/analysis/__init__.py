"""Analysis tools that take any model (effective receptive field, ...)."""

from convzoo.analysis.erf import ERF, area_ratio, effective_receptive_field

__all__ = ["ERF", "area_ratio", "effective_receptive_field"]
