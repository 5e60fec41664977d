"""ajbrock/BigGAN-PyTorch state dicts (``G.pth``, ``G_ema.pth``, ``D.pth``) -> zoo BigGAN.

``zoo.models.biggan`` uses BigGAN-PyTorch's parameter and buffer names (spectral-norm ``u0``/``sv0``,
BN ``stored_mean``/``stored_var``), so the tensors load unchanged; the work here is inferring the
architecture (resolution, G_ch / D_ch, dim_z and hierarchical z, shared_dim, classes, attention
positions, D_wide) from the shapes and refusing what zoo does not implement (no shared embedding,
several singular vectors, ``--mybn``, non-SN layers).  Not stored in the files, and assumed as in
BigGAN-PyTorch's launch scripts: BN_eps 1e-5, SN_eps 1e-6, one power iteration per call.
"""
from __future__ import annotations

import re
from typing import Any

from zoo.convert.common import Converted, build_strict
from zoo.errors import ZooError
from zoo.models import biggan as bg

RES_BY_G_BLOCKS = {len(ins): res for res, (ins, _) in bg.G_ARCH.items()}
RES_BY_D_BLOCKS = {len(ins): res for res, (ins, _, _) in bg.D_ARCH.items()}


def _blocks(state: dict) -> list[int]:
    idx = sorted({int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.0\.", k))})
    if idx != list(range(len(idx))):
        raise ZooError(f"blocks numbered {idx}, expected 0..n-1")
    return idx


def _attn_spec(resolutions: set[int]) -> str:
    return "_".join(str(r) for r in sorted(resolutions)) if resolutions else "0"


def _is_discriminator(state: dict) -> bool:
    return "embed.weight" in state and "shared.weight" not in state


def _check_supported(state: dict, what: str) -> None:
    if any(".bn.stored_mean" in k or k.endswith("accumulation_counter") for k in state):
        raise ZooError(f"{what}: checkpoints trained with --mybn / cross-replica BN are not supported")
    if any(k.endswith(".u1") for k in state):
        raise ZooError(f"{what}: more than one singular vector per layer (num_SVs > 1) is not supported")
    if "blocks.0.0.conv1.u0" not in state:
        raise ZooError(f"{what}: layers without spectral norm (G_param/D_param != 'SN') are not supported")


def _generator_facts(state: dict, what: str) -> dict:
    if _is_discriminator(state):
        raise ZooError(f"{what} is a BigGAN discriminator; pass the generator (G.pth / G_ema.pth) as the source "
                       "and the discriminator with --d")
    _check_supported(state, what)
    if "shared.weight" not in state:
        raise ZooError(f"{what}: no shared class embedding (trained without --G_shared): not supported")
    n = len(_blocks(state))
    if n not in RES_BY_G_BLOCKS:
        raise ZooError(f"{what}: {n} generator blocks match no BigGAN-PyTorch architecture")
    res = RES_BY_G_BLOCKS[n]
    ins, outs = bg.G_ARCH[res]
    cin0 = int(state["blocks.0.0.conv1.weight"].shape[1])
    if cin0 % ins[0]:
        raise ZooError(f"{what}: first block width {cin0} is not a multiple of {ins[0]}")
    ch = cin0 // ins[0]
    for i, (a, b) in enumerate(zip(ins, outs)):
        shape = tuple(state[f"blocks.{i}.0.conv1.weight"].shape[:2])
        if shape != (b * ch, a * ch):
            raise ZooError(f"{what}: block {i} conv1 is {shape[1]}->{shape[0]}, the {res}px table with G_ch={ch} "
                           f"needs {a * ch}->{b * ch}")
    n_classes, shared_dim = (int(s) for s in state["shared.weight"].shape)
    cond_in = int(state["blocks.0.0.bn1.gain.weight"].shape[1])
    lin_in = int(state["linear.weight"].shape[1])
    hier = cond_in != shared_dim
    if hier and cond_in != shared_dim + lin_in:
        raise ZooError(f"{what}: conditional-BN input {cond_in} != shared_dim {shared_dim} + z chunk {lin_in}")
    attn = {bg.BOTTOM_WIDTH * 2 ** (i + 1) for i in range(n) if f"blocks.{i}.1.gamma" in state}
    return dict(resolution=res, G_ch=ch, n_classes=n_classes, shared_dim=shared_dim, hier=hier,
                dim_z=lin_in * (n + 1) if hier else lin_in, G_attn=_attn_spec(attn),
                img_channels=int(state["output_layer.2.weight"].shape[0]))


def _discriminator_facts(state: dict) -> dict:
    if not _is_discriminator(state):
        raise ZooError("--d is not a BigGAN discriminator state dict (it has no class projection 'embed')")
    _check_supported(state, "D")
    idx = _blocks(state)
    if len(idx) not in RES_BY_D_BLOCKS:
        raise ZooError(f"D: {len(idx)} blocks match no BigGAN-PyTorch architecture")
    res = RES_BY_D_BLOCKS[len(idx)]
    _, outs, _ = bg.D_ARCH[res]
    cout0 = int(state["blocks.0.0.conv2.weight"].shape[0])
    if cout0 % outs[0]:
        raise ZooError(f"D: first block width {cout0} is not a multiple of {outs[0]}")
    ch = cout0 // outs[0]
    hidden1 = int(state["blocks.1.0.conv1.weight"].shape[0])
    wide = hidden1 == outs[1] * ch
    attn_blocks = [f"blocks.{i}.1.gamma" in state for i in idx]
    return dict(resolution=res, D_ch=ch, D_wide=wide, attn_blocks=attn_blocks,
                n_classes=int(state["embed.weight"].shape[0]),
                img_channels=int(state["blocks.0.0.conv1.weight"].shape[1]))


def _d_attn_spec(res: int, d_ch: int, attn_blocks: list[bool]) -> str:
    """zoo labels D attention by each block's real output resolution; check the file's positions are
    expressible that way (BigGAN-PyTorch's 32 px table labels every block '16')."""
    probe = bg.Config(resolution=res, D_ch=d_ch, G_ch=d_ch, D_attn="0", G_attn="0", hier=False)
    resolutions = [b.resolution for b in probe.d_blocks()]
    wanted = {r for r, a in zip(resolutions, attn_blocks) if a}
    if [r in wanted for r in resolutions] != attn_blocks:
        raise ZooError(f"D: attention after blocks {[i for i, a in enumerate(attn_blocks) if a]} cannot be "
                       "expressed by resolution")
    return _attn_spec(wanted)


def from_biggan_pytorch(G: Any, D: Any = None, G_ema: Any = None) -> Converted:
    """``G``: the source file's state dict (G.pth or G_ema.pth); ``G_ema``: G_ema.pth when ``G`` is the
    raw generator; ``D``: D.pth."""
    for name, sd in (("source", G), ("--g-ema", G_ema), ("--d", D)):
        if sd is not None and not isinstance(sd, dict):
            raise ZooError(f"{name}: not a state dict")
    ema_state, raw_state = (G_ema, G) if G_ema is not None else (G, None)
    facts = _generator_facts(ema_state, "G_ema" if G_ema is not None else "source")
    if raw_state is not None and _generator_facts(raw_state, "G") != facts:
        raise ZooError("G.pth and G_ema.pth have different architectures")
    notes = ["BN_eps=1e-5, SN_eps=1e-6 and one power iteration per call are assumed (BigGAN-PyTorch's launch "
             "scripts); the weight files do not store them"]
    d_facts: dict[str, Any] = {}
    if D is not None:
        d_facts = _discriminator_facts(D)
        for key in ("resolution", "n_classes", "img_channels"):
            if d_facts[key] != facts[key]:
                raise ZooError(f"D {key}={d_facts[key]} does not match G's {facts[key]}")
        d_attn = _d_attn_spec(facts["resolution"], d_facts["D_ch"], d_facts["attn_blocks"])
    else:
        notes.append("no discriminator (--d D.pth): the checkpoint cannot serve as a DGL-GAN teacher")
        d_attn = "0"
    cfg = bg.Config(resolution=facts["resolution"], img_channels=facts["img_channels"], n_classes=facts["n_classes"],
                    G_ch=facts["G_ch"], D_ch=d_facts.get("D_ch", facts["G_ch"]), ch_mul="1", dim_z=facts["dim_z"],
                    shared_dim=facts["shared_dim"], hier=facts["hier"], G_attn=facts["G_attn"], D_attn=d_attn,
                    D_wide=d_facts.get("D_wide", True), SN_eps=1e-6, BN_eps=1e-5, num_SV_itrs=1)
    out = Converted(config=cfg, G_ema=build_strict(lambda: bg.Generator(cfg), ema_state, "G_ema"), notes=notes)
    if raw_state is not None:
        out.G = build_strict(lambda: bg.Generator(cfg), raw_state, "G")
    if D is not None:
        out.D = build_strict(lambda: bg.Discriminator(cfg), D, "D")
    out.found = {
        "architecture": f"BigGAN (BigGAN-PyTorch {facts['resolution']}px table)",
        "resolution": cfg.resolution, "img_channels": cfg.img_channels, "n_classes": cfg.n_classes,
        "G_ch": cfg.G_ch, "D_ch": cfg.D_ch if D is not None else "(no D)", "dim_z": cfg.dim_z,
        "hierarchical z": f"{cfg.num_z_chunks} chunks of {cfg.z_chunk_size}" if cfg.hier else "no",
        "shared_dim": cfg.shared_dim, "G attention": cfg.G_attn, "D attention": cfg.D_attn,
        "D_wide": cfg.D_wide, "networks": ", ".join(k for k in ("G_ema", "G", "D") if getattr(out, k) is not None),
    }
    return out
