"""The BigGAN family (networks: ``zoo.models.biggan``)."""
from zoo.families import GANFamily, register_family
from zoo.models import biggan as _net

BIGGAN = register_family(GANFamily(
    name="biggan", Config=_net.Config, Generator=_net.Generator, Discriminator=_net.Discriminator,
    label_format="index", reference="BigGAN-PyTorch",
    paper_macs=_net.paper_macs,
    paper_macs_note=("DGL-GAN BigGAN.py counter, whose attention term grows as C*R^6/32 (a bug in the paper's counter, "
                     "reproduced for comparability; macs_G_fvcore is the real cost)"),
    # BigGAN-PyTorch steps D before G and averages every state entry into G_ema (utils.ema)
    d_first=True, ema_averages_buffers=True,
))
