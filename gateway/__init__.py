"""crc-gateway: the data-integration gateway for probation case data."""

__version__ = "0.1.0"
