"""Canal Garcia et al., "Prediction of Attributes" (KTH 2018): InceptionV3 transfer (bottlenecks,
tf-slim fine-tuning) vs Cascade CNN and TCDCN for gender and smile on MTFL, in TensorFlow.

`python -m mtfl_compare reproduce --help`; see README.md."""
