from .projection import feature_projection

__all__ = ["feature_projection"]
