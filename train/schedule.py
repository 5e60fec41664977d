"""The DGL-GAN schedule of Algorithm 1: when stage II starts and ends, and when and how much Adv(G, D_bar)
counts in the generator's loss.

    stage I    nimg in [0, T)        the family's plain objective
    stage II   nimg in [T, T + S)    G's loss += lam * Adv(G, D_bar)

Steps show ``batch`` images each, so the switch happens at the first step boundary at or after T.  With
``interval`` k > 1 the teacher term is lazy, as StyleGAN2 treats R1: it runs on every k-th generator step
(steps 0, k, 2k, ... of the run's step counter) with weight lam * k, the same weight per image on average.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DGLSchedule:
    """T, S (images), lam, the lazy interval k and what happens to Adam's moments at the switch.

    T:                images of stage I (``stage1_kimg * 1000``).
    S:                images of stage II (``stage2_kimg * 1000``; an open-ended stage II runs at most
                      ``divergence.max_kimg``).
    lam:              lambda, the weight of Adv(G, D_bar); 0 for a baseline or a teacher run.
    interval:         k, ``dgl_interval``.
    stage2_optimizer: 'restart' (fresh Adam moments at the switch) or 'continue'.
    teacher:          Adv(G, D_bar) is computed in stage II: a DGL run, at lam = 0 too (where it is logged
                      and weighted 0, so a lam = 0 run is a baseline with the teacher's term on record).
    """

    T: int
    S: int
    lam: float
    interval: int = 1
    stage2_optimizer: str = "restart"
    teacher: bool = True

    @classmethod
    def from_config(cls, cfg, method: str) -> "DGLSchedule":
        """The schedule of a run of ``method`` ('dgl' | 'baseline' | 'teacher') with TrainConfig ``cfg``."""
        stage2_kimg = cfg.stage2_kimg if cfg.stage2_kimg is not None else cfg.divergence.max_kimg
        dgl = method == "dgl"
        return cls(T=int(round(cfg.stage1_kimg * 1000)), S=int(round(stage2_kimg * 1000)),
                   lam=cfg.lam if dgl else 0.0, interval=cfg.dgl_interval, stage2_optimizer=cfg.stage2_optimizer,
                   teacher=dgl)

    @property
    def total(self) -> int:
        """Images of the whole run, T + S."""
        return self.T + self.S

    def stage(self, nimg: int) -> int:
        """The stage of the training step that starts at ``nimg`` (< total): II from T on."""
        return 2 if self.T <= nimg < self.total else 1

    def switches_at(self, nimg_before: int, nimg_after: int) -> bool:
        """The step from ``nimg_before`` to ``nimg_after`` is the last of stage I (it reaches T > 0): a tick
        ends there, so the logs, the image grid and the state show the networks at the switch."""
        return nimg_before < self.T <= nimg_after

    @property
    def restarts_optimizers(self) -> bool:
        """Both Adam optimisers start afresh at the switch (TrainConfig.stage2_optimizer says why)."""
        return self.stage2_optimizer == "restart"

    def teacher_runs(self, step: int, stage: int) -> bool:
        """Adv(G, D_bar) is part of G's loss at ``step``: stage II of a DGL run, every ``interval``-th step."""
        return self.teacher and stage == 2 and step % self.interval == 0

    def teacher_weight(self, step: int, stage: int) -> float:
        """The weight of Adv(G, D_bar) in G's loss at ``step``: lam * interval where it runs, else 0."""
        return self.lam * self.interval if self.teacher_runs(step, stage) else 0.0

    def lam_at(self, stage: int) -> float:
        """lambda as logged (``progress/lambda``): the run's lambda in stage II, 0 in stage I."""
        return self.lam if stage == 2 else 0.0
