"""Things: a local two-layer model in a padded box around each object instance (Sevilla-Lara et al. 2016).

Inside the box there are two layers, the object in front of its background (the depth order comes
from semantics: a thing occludes what is behind it). Each layer moves by a robust affine motion plus
a smooth per-pixel residual; pixels are assigned to layers starting from the mask, refined near its
boundary; background pixels the object covers in frame t+1 are marked occluded and keep the
background layer's motion (their photometric error says nothing, so it is ignored). A model is kept
only where the evidence (inlier shares, photometric error against the baseline's) supports it.

    from semflow.layers.things import ThingParams, fit_things
    fits = fit_things(instances, instance_map, ctx, ThingParams(), plane_flow=...)   # list[ThingFit]

The package, one module per job, in the order the data flows:

- :mod:`.params`: :class:`ThingParams` (all settings) and :class:`ThingFit` (the result per instance);
- :mod:`.motion`: the motion models: affine fits, photometric polishing, the smooth residual, the
  object layer's several motions when a mask holds touching objects (:mod:`.motion_choice`: which of
  them each pixel takes);
- :mod:`.assignment`: the pixel-to-layer assignment and the occlusion step;
- :mod:`.judgement`: whether the fitted model replaces the baseline at all;
- :mod:`.layered`: steps 3-5 of one instance's fit, once its object layer is known: the background
  layer, the assignment, the judgement (:func:`~semflow.layers.things.layered.layered_model`);
- :mod:`.fit`: the per-instance driver (:func:`fit_thing`, :func:`fit_things`, the padded box): the
  evidence, the object layer, the motion split tried again.
"""

from semflow.layers.things.fit import fit_thing, fit_things, thing_box
from semflow.layers.things.params import ThingFit, ThingParams, thing_params_for

__all__ = ["ThingFit", "ThingParams", "fit_thing", "fit_things", "thing_box", "thing_params_for"]
