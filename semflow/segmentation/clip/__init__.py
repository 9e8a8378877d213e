"""CLIP as an optional semantic prior: zero-shot labels per region, fused with the backbone's.

The segmentation backbone knows a fixed label set (CamVid's 11 classes, say) and is unsure of what it
never saw (an animal, a boat). CLIP (Radford et al. 2021, run through ``open_clip``, the optional
extra ``semflow[clip]``) scores each region of the backbone's label map against a class list of the
user's choosing, and the two opinions are fused per region, which decides the region's kind (thing,
plane, stuff) and so which motion model it gets.

    from semflow.segmentation import get_segmenter
    from semflow.segmentation.clip import ClipPriorSpec
    prior = ClipPriorSpec("ViT-B-32", "~/models/ViT-B-32.pt", classes="dog:thing,road:plane,tree:stuff")
    segmenter = get_segmenter("camvid", prior=prior)   # predictions fused with CLIP's region labels

Modules, in the order the data flows:

- :mod:`.prompts`: class lists (``name|alias:kind``) and prompt templates, plain data;
- :mod:`.spec`: :class:`ClipPriorSpec`, the prior as plain data (what the API and CLI pass around);
- :mod:`.loading`: the user's checkpoint into an open_clip model, offline, never running its code;
- :mod:`.cache`: the classes' text embeddings, cached on disk;
- :mod:`.fusion`: the per-region fusion rule (numpy only);
- :mod:`.prior`: :class:`~.prior.ClipPrior`: regions, masked crops, CLIP's probabilities, fusion;
- :mod:`.segmenter`: :class:`~.segmenter.PriorSegmenter`, a segmenter behind the prior.

This package's top level imports neither torch nor open_clip; the modules that need them are
imported by name.
"""

from semflow.segmentation.clip.prompts import (
    DEFAULT_PRIOR_CLASSES,
    KINDS,
    PROMPT_TEMPLATES,
    PriorClass,
    parse_prior_classes,
)
from semflow.segmentation.clip.spec import ClipPriorSpec, prior_from_options

__all__ = ["DEFAULT_PRIOR_CLASSES", "KINDS", "PROMPT_TEMPLATES", "ClipPriorSpec", "PriorClass",
           "parse_prior_classes", "prior_from_options"]
