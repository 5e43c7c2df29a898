"""nuclei-unet: a U-Net that segments cell nuclei, trained and scored by a DVC pipeline.

The subpackages follow the pipeline: ``data`` (download, prepare, split), ``transforms``,
``model``, ``train``, ``infer`` (predict), ``metrics`` and ``evaluate``; ``config`` is the
params schema, ``io`` the files they exchange, ``cli`` the ``nuclei-unet`` command.
"""
