"""Images: decode and check a photo, preprocess it for a model, map model-input pixels back, encode it.

``load_image`` turns an upload into an upright RGB ``PIL.Image`` or raises ``ImageError`` with a message a
person can act on (no paths, no tracebacks); ``read_image`` does the same for anything a notebook passes
(path, bytes, file, PIL image, array). ``prepare_input`` runs the model's own timm eval transform and returns
the input tensor with the ``InputGeometry`` that says which part of the photo the model saw.

One concept per module: ``decode`` (files, modes, arrays), ``forensics`` (what a bad file most likely is),
``geometry`` (the two coordinate frames), ``preprocess`` (data config and transform), ``encode`` (the JPEG
encoder and the photo cache of the figures). torch and timm are imported inside the functions that need them,
so ``import vitviz.images`` is cheap.
"""
from __future__ import annotations

from .decode import MAX_PIXELS, as_rgb_array, load_image, read_image, to_rgb
from .encode import encode_jpeg, image_data_uri, photo_data_uri
from .errors import SUPPORTED_FORMATS, ImageError
from .geometry import InputGeometry, image_size
from .preprocess import FITS, data_config, input_geometry, input_image, prepare_input, sees_whole_image

__all__ = [
    "FITS",
    "MAX_PIXELS",
    "SUPPORTED_FORMATS",
    "ImageError",
    "InputGeometry",
    "as_rgb_array",
    "data_config",
    "encode_jpeg",
    "image_data_uri",
    "image_size",
    "input_geometry",
    "input_image",
    "load_image",
    "photo_data_uri",
    "prepare_input",
    "sees_whole_image",
    "read_image",
    "to_rgb",
]
