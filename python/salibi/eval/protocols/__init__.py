"""The frozen-encoder protocols, on arrays (independent of any benchmark reader).

- :mod:`~salibi.eval.protocols.registry`: what each protocol is, its parameters
  (:class:`~salibi.eval.protocols.registry.ProtocolSettings`) and running it;
- :mod:`~salibi.eval.protocols.knn`: the k-nearest-neighbour vote;
- :mod:`~salibi.eval.protocols.linear_probe`: logistic regression, C swept on validation;
- :mod:`~salibi.eval.protocols.segmentation_heads`: the linear and FPN segmentation heads, and
  the majority-class chance reference.

Nothing is imported here.
"""
