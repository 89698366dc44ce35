"""The package's throwaway portal process, under the name the tests use."""

from synapse_base_cs_url.portal.throwaway import PortalProcess

__all__ = ["PortalProcess"]
