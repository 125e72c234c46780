"""Several processes for one command, the PyTorch way (used by ``pretrain`` and ``embed``).

- :mod:`~salibi.distributed.ranks`: torchrun's environment, read once (:class:`TorchrunEnv`);
  joining the job and choosing the device (:func:`join` -> :class:`Rank`, with its collectives);
  ``--gpus`` checked (:func:`check_gpus`), ``--device`` resolved, work split over ranks (:func:`shard`);
- :mod:`~salibi.distributed.launcher`: N local ranks started with torch's elastic launcher;
- :mod:`~salibi.distributed.stopping`: SIGINT/SIGTERM as one stop request every rank agrees on.
"""
