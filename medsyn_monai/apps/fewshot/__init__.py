"""Few-shot fine-tuning of a class-conditional diffusion model with prior preservation (DreamBooth for class labels):
class-slot surgery on the base weights and the base model's class-prior images."""

from .class_slot import FewShotSetup, add_class_slot, class_embedding_keys
from .prior_images import PRIOR_MANIFEST_NAME, PriorImageGenerator

__all__ = ["PRIOR_MANIFEST_NAME", "FewShotSetup", "PriorImageGenerator", "add_class_slot", "class_embedding_keys"]
