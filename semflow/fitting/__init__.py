"""Generic motion fitting on plain arrays, used by the baseline (discrete's search for missed motions)
and by the layer models: affine motions fitted to sparse patch matches with a label cost
(:mod:`.motion_fit`), the assignment of pixels to motions by graph cuts (:mod:`.graph_cut`) and the
mask morphology they share (:mod:`.morphology`). Nothing here knows regions, kinds or layers: it sits
below :mod:`semflow.layers` and :mod:`semflow.baseline` and imports neither.
"""
