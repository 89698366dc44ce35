"""A module that cannot be imported: ``compute`` pointing here must fail startup."""

raise RuntimeError("this module is broken on purpose")
