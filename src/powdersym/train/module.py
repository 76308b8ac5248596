"""Lightning modules: thin wiring of a plain `nn.Module` (powdersym.models) to losses, metrics and optimisers.

`Classifier`: cross-entropy on one label set (+ MSE on the scaled lattice parameters when the model has lattice
heads). `SGAN`: the main paper's semi-supervised GAN (eqs. 1-3) with manual optimisation of generator and
discriminator.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from powdersym.train.config import TrainConfig, class_target


def build_network(config: TrainConfig, n_classes: int, n_points: int) -> torch.nn.Module:
    """The plain model a config describes (a MultiTask wrapper when lattice heads are asked for)."""
    from powdersym.models import MultiTask, build_model

    kwargs = dict(config.model_kwargs)
    if config.dropout is not None:
        kwargs["dropout"] = config.dropout
    net = build_model(config.model, n_classes, n_points, **kwargs)
    return MultiTask(net) if config.lattice_weight > 0 else net


def topk_correct(logits: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    """Rows [B] (bool) whose target is among the k highest logits (rows with target -1 count as wrong)."""
    k = min(k, logits.shape[1])
    return (logits.topk(k, dim=1).indices == target[:, None]).any(1)


def seed_process(module: L.LightningModule) -> None:
    """Under DDP, a process's own torch seed (run seed, global rank), so processes draw their own dropout masks and
    SGAN noise; the weights were initialised alike in every process before (and DDP broadcasts rank 0's)."""
    trainer = module.trainer
    if trainer.world_size > 1:
        torch.manual_seed(int(np.random.SeedSequence([module.config.seed, trainer.global_rank]).generate_state(1)[0]))


class Classifier(L.LightningModule):
    """Supervised training of one classifier (optionally with lattice-parameter heads)."""

    def __init__(self, config: dict[str, Any], n_classes: int, n_points: int, lattice_scaler: dict | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.config = TrainConfig.from_dict(config)
        self.net = build_network(self.config, n_classes, n_points)
        self.scaler = None
        if lattice_scaler is not None:
            from powdersym.models import LatticeScaler

            self.scaler = LatticeScaler.from_dict(lattice_scaler)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return self.net(x)

    def _losses(self, batch: tuple[torch.Tensor, dict[str, torch.Tensor]], stage: str) -> torch.Tensor:
        x, labels = batch
        target = class_target(labels, self.config.labels)
        out = self.net(x)
        logits, lattice = out if isinstance(out, tuple) else (out, None)
        loss = F.cross_entropy(logits.float(), target, ignore_index=-1)
        log = {f"{stage}_ce": loss}
        if lattice is not None and self.scaler is not None:
            mse = F.mse_loss(lattice.float(), self.scaler.transform(labels["lattice"].float()))
            log[f"{stage}_lattice_mse"] = mse
            loss = loss + self.config.lattice_weight * mse
        log[f"{stage}_loss"] = loss
        with torch.no_grad():
            log[f"{stage}_acc"] = topk_correct(logits, target, 1).float().mean()
            log[f"{stage}_top5"] = topk_correct(logits, target, 5).float().mean()
        on_step = stage == "train"
        # validation metrics are averaged over DDP processes (training ones are rank 0's, logged as they come)
        self.log_dict(log, on_step=on_step, on_epoch=not on_step, prog_bar=True, batch_size=len(x), sync_dist=not on_step)
        return loss

    def on_fit_start(self) -> None:
        seed_process(self)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False, batch_size=len(batch[0]))
        return self._losses(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._losses(batch, "val")

    def configure_optimizers(self):
        return torch.optim.Adam(self.net.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)


class SGAN(L.LightningModule):
    """Lolla et al.'s semi-supervised GAN: the discriminator is the classifier (D(x) = Z/(Z+1), eq. 1); each step
    takes a labelled and an unlabelled real batch, updates the discriminator on eq. 3 (cross-entropy on the
    labelled rows + real/fake terms on unlabelled and generated rows) and the generator on eq. 2 (non-saturating),
    or on feature matching (Salimans et al. 2016) with generator_loss='feature_matching'. Manual optimisation:
    two Adam optimisers with the paper's rates (Table 2) as defaults."""

    def __init__(self, config: dict[str, Any], n_classes: int, n_points: int, lattice_scaler: dict | None = None):
        super().__init__()
        from powdersym.models import SGAN as Networks
        from powdersym.models import build_generator

        self.save_hyperparameters()
        self.automatic_optimization = False
        self.config = TrainConfig.from_dict(config)
        self.net = Networks(build_network(self.config, n_classes, n_points), build_generator(n_points))
        if self.config.generator_loss == "feature_matching" and not hasattr(self.net.discriminator, "features"):
            raise ValueError(f"feature matching needs a discriminator with features(); {self.config.model!r} has none")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.discriminator(x)

    def _generator_loss(self, unlabelled: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """Eq. 2 or feature matching, generated patterns normalised with the statistics of the real ones in their batch
        (see training_step); the running statistics are left as the discriminator step made them."""
        from powdersym.models import feature_matching_loss, generator_loss
        from powdersym.models.sgan import real_statistics

        discriminator, n = self.net.discriminator, len(unlabelled)
        with real_statistics(discriminator, n, update=False):
            if self.config.generator_loss == "feature_matching":
                real, generated = discriminator.features(torch.cat([unlabelled, fake])).split([n, len(fake)])
                return feature_matching_loss(real, generated)
            return generator_loss(discriminator(torch.cat([unlabelled, fake]))[n:])

    def training_step(self, batch, batch_idx: int) -> None:
        from powdersym.models import discriminator_loss
        from powdersym.models.sgan import real_statistics

        (x, labels), (unlabelled, _) = batch["labelled"], batch["unlabelled"]
        target = class_target(labels, self.config.labels)
        d_optimiser, g_optimiser = self.optimizers()
        generator, discriminator = self.net.generator, self.net.discriminator
        # noise seeded by (run seed, rank, batch): a resumed run draws what the uninterrupted one would have
        batch = self.trainer.global_step // self.config.optimiser_steps
        batch_seed = np.random.SeedSequence([self.config.seed, self.trainer.global_rank, batch, 1])
        noise_rng = torch.Generator(device=unlabelled.device)
        noise_rng.manual_seed(int(batch_seed.generate_state(1)[0]))
        noise = generator.sample_noise(len(unlabelled), device=unlabelled.device, generator=noise_rng)
        fake = generator(noise).reshape(len(unlabelled), -1)  # [B, P]
        # one discriminator batch of unlabelled, labelled and generated patterns, BatchNorm normalising all of them
        # with the statistics of the real ones (real_statistics says why: with the generated ones in the statistics
        # the evaluated classifier gave uniform outputs); with the published LayerNorm this is three separate batches
        n_real = len(unlabelled) + len(x)
        with real_statistics(discriminator, n_real):
            logits = discriminator(torch.cat([unlabelled, x, fake.detach()]))
        real_logits, labelled_logits, fake_logits = logits.split([len(unlabelled), len(x), len(fake)])
        d_loss = discriminator_loss(real_logits, fake_logits, labelled_logits, target)
        d_optimiser.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        d_optimiser.step()
        g_loss = self._generator_loss(unlabelled, fake)
        g_optimiser.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        g_optimiser.step()
        with torch.no_grad():
            accuracy = topk_correct(labelled_logits, target, 1).float().mean()
        self.log_dict({"train_d_loss": d_loss, "train_g_loss": g_loss, "train_acc": accuracy}, prog_bar=True, batch_size=len(x))

    def validation_step(self, batch, batch_idx: int) -> None:
        x, labels = batch
        target = class_target(labels, self.config.labels)
        logits = self.net.discriminator(x)
        loss = F.cross_entropy(logits.float(), target, ignore_index=-1)
        self.log_dict({"val_loss": loss, "val_acc": topk_correct(logits, target, 1).float().mean(),
                       "val_top5": topk_correct(logits, target, 5).float().mean()}, prog_bar=True, batch_size=len(x),
                      sync_dist=True)  # fmt: skip

    def on_fit_start(self) -> None:
        seed_process(self)

    def configure_optimizers(self):
        c = self.config
        return (
            torch.optim.Adam(self.net.discriminator.parameters(), lr=c.discriminator_lr),
            torch.optim.Adam(self.net.generator.parameters(), lr=c.generator_lr),
        )
