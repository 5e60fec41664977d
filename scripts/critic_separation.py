"""Does an entry's discriminator tell real images from its own generator's?  The check behind DGL-GAN:
the teacher term Adv(G, D̄) can only teach what D̄ can tell apart.

    python scripts/critic_separation.py biggan-fashion-mnist --data ~/.cache/ganzoo/study/data/fashion-mnist-32

Prints, for n real images (seeded) and n samples of the entry's G_ema (labels of the same real images for a
conditional model), D's mean logit on each and their separation P(D(x) > D(G(z))) (``separation``: ROC AUC,
0.5 = none).  Training runs log the same quantity on their monitor batch as ``score/hbar_auc``.
"""
from __future__ import annotations

import argparse
import json
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="registry entry NAME[@VERSION] or checkpoint directory (with a discriminator)")
    parser.add_argument("--ch-mul", default="1")
    parser.add_argument("--data", required=True, help="the entry's dataset directory (zoo data build)")
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 1 <= args.n <= 8192:
        parser.error("--n must be in 1..8192")

    import numpy as np
    import torch

    import zoo
    from zoo.errors import ZooError
    from zoo.images import class_inputs
    from zoo.train.data.dataset import load_dataset
    from zoo.train.metrics.stats import separation

    try:
        entry = zoo.load_entry(args.name, ch_mul=args.ch_mul)  # NAME[@VERSION] or ./directory
        if entry.D is None:
            raise ZooError(f"{args.name}: the entry ships no discriminator")
        data = load_dataset(args.data)
        G, D = entry.G_ema.eval(), entry.D.eval()
        generator = torch.Generator().manual_seed(args.seed)
        index = torch.randperm(len(data), generator=generator)[:args.n].numpy()
        real = torch.from_numpy(np.ascontiguousarray(data.images[index])).float() / 127.5 - 1
        if G.c_dim and data.labels is None:
            raise ZooError(f"{args.data}: {args.name} is class-conditional, the dataset has no labels")
        # the family's own conditioning (indices for BigGAN, one-hot for StyleGAN2), range-checked
        c = class_inputs(G, data.labels[index].tolist()) if G.c_dim else None
        z = torch.randn(len(index), G.z_dim, generator=generator)
        with torch.no_grad():
            fake = G(z, c)
            real_logits, fake_logits = D(real, c).flatten(), D(fake, c).flatten()
    except (ZooError, ValueError) as exc:  # ValueError: a dataset of another shape or class count
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"entry": args.name, "ch_mul": args.ch_mul, "n": len(index), "seed": args.seed,
                      "D_real_mean": round(float(real_logits.mean()), 4),
                      "D_fake_mean": round(float(fake_logits.mean()), 4),
                      "separation": round(separation(real_logits, fake_logits), 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
