"""Input and output: flow formats, images, videos and dataset readers."""

from semflow.io.flow import read_flow, read_flow_valid, write_flow
from semflow.io.images import read_image, write_image

__all__ = ["read_flow", "read_flow_valid", "write_flow", "read_image", "write_image"]
