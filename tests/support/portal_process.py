"""The package's throwaway portal process, under the name the tests use."""

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess

__all__ = ["PortalProcess"]
