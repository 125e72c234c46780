"""What ``salibi embed`` reads: the band contract (:mod:`.routing`), pixels for the model
(:mod:`.pixels`), tiles (:mod:`.tiles`), scenes' chip grids (:mod:`.scenes`), aligned sets'
chips (:mod:`.aligned_chips`), and reading them ahead of the model in order (:mod:`.reading`)."""
