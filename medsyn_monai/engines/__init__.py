from .prepare_batch import DiffusionPrepareBatch
from .sampler import DiffusionSampler
from .trainer import DiffusionTrainer

__all__ = ["DiffusionPrepareBatch", "DiffusionSampler", "DiffusionTrainer"]
