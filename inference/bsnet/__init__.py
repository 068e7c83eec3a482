"""BS-Net building blocks (Signoroni et al., Medical Image Analysis 2021), as summarised in BSNET.md."""
