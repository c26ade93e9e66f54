"""Tu et al., "Face Attribute Inversion": one U-Net generator with 1x1-reduced skip connections that
inverts a binary face attribute, an auxiliary-classifier discriminator, and the CycleGAN baseline;
Table 1 (FID / DFN), Fig. 2 and Fig. 3. See README.md; entry point ``python -m attribute_inversion``."""
