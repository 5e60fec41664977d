"""The StyleGAN2 family (networks: ``zoo.models.stylegan2``)."""
from zoo.families import GANFamily, register_family
from zoo.models import stylegan2 as _net

STYLEGAN2 = register_family(GANFamily(
    name="stylegan2", Config=_net.Config, Generator=_net.Generator, Discriminator=_net.Discriminator,
    label_format="onehot", reference="NVlabs StyleGAN2",
    paper_macs=_net.paper_macs,
    paper_macs_note="DGL-GAN Network.cal_flops convention (up-conv counted at output resolution, const counted as a conv)",
    d_first=False, ema_averages_buffers=False,
))
