"""infoshare: threat and hazard notices for critical infrastructure, as signed STIX 2.1."""

__version__ = "0.1.0"
