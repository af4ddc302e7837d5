"""Differentially private training (DP-SGD) of any MONAI/Ignite trainer through Opacus."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from ignite.engine import Engine, Events

from medsyn_monai.utils.distributed import get_world_size

__all__ = ["DifferentialPrivacy", "PrivacyBudgetError"]


class PrivacyBudgetError(RuntimeError):
    """Training would spend more privacy than the budget the run was calibrated for."""


class DifferentialPrivacy:
    """DP-SGD (Abadi et al. 2016, "Deep learning with differential privacy") for a trainer's network, with Opacus:
    per-sample gradients clipped to ``max_grad_norm``, Gaussian noise calibrated so that ``max_epochs`` epochs of
    Poisson-sampled batches spend exactly ``(epsilon, delta)`` under the ``accountant`` (RDP by default), and the
    privacy spent logged every epoch.

    At the engine's start it replaces the engine's network by Opacus's ``GradSampleModule`` (the same parameters:
    checkpoints, EMA and sampling keep using the plain network), its optimizer by a ``DPOptimizer`` (the same
    parameter groups: LR schedules still apply) and its data by a Poisson-sampling ``DPDataLoader``. Everything
    computed from the private weights afterwards (the EMA copy, samples, exports) is post-processing and keeps the
    guarantee. The noise is calibrated for the run's ``max_epochs``: a resume that asks for more epochs stops with
    :class:`PrivacyBudgetError` instead of spending more, and the accountant's history is saved with the checkpoint
    (this handler has ``state_dict``; put it in the checkpoint's ``save_dict``).

    Requirements (checked): the optimizer trains the network's parameters only (not, e.g., a feature-alignment
    projector), no float16 AMP, and the network has no BatchNorm (the project's networks use GroupNorm).

    Args:
        epsilon: the privacy budget ε of the whole training run.
        delta: δ (default: ``1 / (10 * N)`` for ``N`` training images, below the usual ``1 / N`` bound).
        max_grad_norm: per-sample gradient clipping norm ``C``.
        accountant: ``"rdp"`` (Rényi DP), ``"prv"`` or ``"gdp"`` (Opacus accountants).
        epochs: epochs the budget is spread over (default: the engine's ``max_epochs``).

    Example:
        >>> dp = DifferentialPrivacy(epsilon=8.0)
        >>> dp.summary()["epsilon"], dp.summary()["epsilon_spent"]
        (8.0, 0.0)
    """

    def __init__(
        self,
        epsilon: float,
        delta: float | None = None,
        max_grad_norm: float = 1.0,
        accountant: str = "rdp",
        epochs: int | None = None,
    ) -> None:
        if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
            raise ValueError(f"epsilon (--dp_epsilon) must be a positive number, got {epsilon!r}.")
        if delta is not None and not 0 < float(delta) < 1:
            raise ValueError(f"delta (--dp_delta) must be in (0, 1), got {delta!r}.")
        if not float(max_grad_norm) > 0:
            raise ValueError(f"max_grad_norm (--dp_max_grad_norm) must be positive, got {max_grad_norm!r}.")
        if str(accountant) not in ("rdp", "prv", "gdp"):
            raise ValueError(f"accountant must be 'rdp', 'prv' or 'gdp', got {accountant!r}.")
        self.epsilon = float(epsilon)
        self.delta = None if delta is None else float(delta)
        self.max_grad_norm = float(max_grad_norm)
        self.accountant_name = str(accountant)
        self.epochs = None if epochs is None else int(epochs)
        self.noise_multiplier: float | None = None
        self.sample_rate: float | None = None
        self.num_samples: int | None = None
        self.privacy_engine: Any = None
        self._loaded: dict[str, Any] | None = None
        self._engine_max_epochs = 0
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.make_private)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._log_spent)

    # ------------------------------------------------------------------------------------------------ private training
    def make_private(self, engine: Engine) -> None:
        """Wrap the engine's network, optimizer and data for DP-SGD (idempotent within one run)."""
        from opacus import PrivacyEngine
        from opacus.validators import ModuleValidator

        if self.privacy_engine is not None:
            return
        network, optimizer, loader = engine.network, engine.optimizer, engine.data_loader  # type: ignore[attr-defined]
        if get_world_size() > 1:
            raise ValueError(
                "differential privacy (--dp_epsilon) is trained in one process: multi-process DP-SGD needs Opacus' "
                "own DPDDP wrapper and a distributed Poisson sampler, which this project does not set up. Train "
                "without configs/multi_gpu_train.json, or without --dp_epsilon."
            )
        if getattr(engine, "amp", False) and getattr(engine, "scaler", None) is not None:
            raise ValueError("differential privacy (--dp_epsilon) does not work with float16 AMP: set --amp false.")
        own = {id(p) for p in network.parameters()}
        foreign = [p for g in optimizer.param_groups for p in g["params"] if id(p) not in own]
        if foreign:
            raise ValueError(
                f"differential privacy (--dp_epsilon) trains the network's own parameters only, but the optimizer also "
                f"trains {len(foreign)} other tensor(s) (e.g. a feature-alignment projector): turn that option off."
            )
        problems = ModuleValidator.validate(network, strict=False)
        if problems:
            raise ValueError(f"the network cannot be trained with DP-SGD: {problems[0]}")
        max_epochs = int(engine.state.max_epochs or 0)
        epochs = self.epochs if self.epochs is not None else max_epochs
        if self._loaded is not None:  # a resume whose checkpoint was loaded first: the first run's calibration
            epochs = int(self._loaded["epochs"])
        self._check_budget(epochs, max_epochs)
        dataset = loader.dataset
        self.num_samples = len(dataset)
        delta = self.delta if self.delta is not None else 1.0 / (10 * self.num_samples)
        if self._loaded is not None:
            delta = float(self._loaded["delta"])
        self.delta = delta
        self.privacy_engine = PrivacyEngine(accountant=self.accountant_name)
        module, dp_optimizer, dp_loader = self.privacy_engine.make_private_with_epsilon(
            module=network,
            optimizer=optimizer,
            data_loader=loader,
            target_epsilon=self.epsilon,
            target_delta=delta,
            epochs=epochs,
            max_grad_norm=self.max_grad_norm,
        )
        self.epochs = epochs
        self.noise_multiplier = float(dp_optimizer.noise_multiplier)
        self.sample_rate = 1.0 / len(loader)
        self._engine_max_epochs = max_epochs
        if self._loaded is not None:
            self.privacy_engine.accountant.history = [tuple(h) for h in self._loaded["history"]]
        engine.network, engine.optimizer, engine.data_loader = module, dp_optimizer, dp_loader  # type: ignore[attr-defined]
        engine.set_data(dp_loader)
        self.logger.info(
            f"differential privacy: DP-SGD with noise multiplier {self.noise_multiplier:.3f}, per-sample clipping "
            f"{self.max_grad_norm:g}, Poisson sampling rate {self.sample_rate:.4f}, for (epsilon={self.epsilon:g}, "
            f"delta={delta:.2e}) over {epochs} epochs ({self.accountant_name} accountant)"
        )

    def _check_budget(self, calibrated_epochs: int, max_epochs: int) -> None:
        if max_epochs != calibrated_epochs:
            raise PrivacyBudgetError(
                f"the privacy budget epsilon={self.epsilon:g} of this run is calibrated for {calibrated_epochs} "
                f"epochs; training to max_epochs={max_epochs} would "
                f"{'spend more than the budget' if max_epochs > calibrated_epochs else 'change the calibration'}. "
                f"Resume with --max_epochs {calibrated_epochs}, or start a new run (another output_dir, or --resume "
                "false) with the number of epochs you need."
            )

    def spent(self) -> float:
        """ε spent so far (0 before any private step)."""
        if self.privacy_engine is None or not self.privacy_engine.accountant.history:
            if self._loaded is not None:
                return float(self._loaded.get("epsilon_spent", 0.0))
            return 0.0
        assert self.delta is not None
        return float(self.privacy_engine.accountant.get_epsilon(self.delta))

    def _log_spent(self, engine: Engine) -> None:
        self.logger.info(f"epoch {engine.state.epoch}: privacy spent epsilon={self.spent():.3f} of {self.epsilon:g}")

    # ----------------------------------------------------------------------------------------------- records and state
    def summary(self) -> dict[str, Any]:
        """What ``model_info.json`` and export manifests record (plain values)."""
        return {
            "mechanism": "DP-SGD (Opacus): per-sample clipping, Gaussian noise, Poisson sampling",
            "epsilon": self.epsilon,
            "delta": self.delta,
            "epsilon_spent": self.spent(),
            "max_grad_norm": self.max_grad_norm,
            "noise_multiplier": self.noise_multiplier,
            "sample_rate": self.sample_rate,
            "epochs": self.epochs,
            "num_training_images": self.num_samples,
            "accountant": self.accountant_name,
        }

    def state_dict(self) -> dict[str, Any]:
        history = [] if self.privacy_engine is None else [list(h) for h in self.privacy_engine.accountant.history]
        if self.privacy_engine is None and self._loaded is not None:
            history = list(self._loaded["history"])
        return {**self.summary(), "history": history}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the accountant of a checkpoint; a run with another budget or clipping norm is refused."""
        for key in ("epsilon", "max_grad_norm", "accountant"):
            mine = {"epsilon": self.epsilon, "max_grad_norm": self.max_grad_norm, "accountant": self.accountant_name}
            if state.get(key) != mine[key]:
                raise PrivacyBudgetError(
                    f"the checkpoint was trained with differential privacy {key}={state.get(key)!r}, this run asks for "
                    f"{mine[key]!r}: resume with the same privacy settings, or start a new run."
                )
        self._loaded = dict(state)
        if self.privacy_engine is not None:  # made private before the checkpoint was loaded (handler order)
            self._check_budget(int(state["epochs"]), self._engine_max_epochs)
            if self.noise_multiplier != state.get("noise_multiplier"):
                raise PrivacyBudgetError(
                    f"the checkpoint was trained with noise multiplier {state.get('noise_multiplier')}, this run "
                    f"calibrated {self.noise_multiplier}: resume with the same data, batch size and max_epochs."
                )
            self.privacy_engine.accountant.history = [tuple(h) for h in state["history"]]

    def __repr__(self) -> str:
        return f"DifferentialPrivacy(epsilon={self.epsilon:g}, max_grad_norm={self.max_grad_norm:g})"
