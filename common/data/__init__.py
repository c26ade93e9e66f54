"""Dataset loaders in each dataset's official layout, splits, and the shared ``FaceDataset``.

Modules: ``celeba``, ``splits``, ``dataset``, ``sources`` (synthetic vs real CelebA), ``mtfl``,
``helen``, ``lfwa``, ``folder``, ``cache`` (decoded-image cache). Import from the module, e.g.
``from common.data.celeba import read_celeba``.
"""
