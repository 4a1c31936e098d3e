"""Suite files: schema, loading with interpolation, validation with located errors."""

from facebench.suite.load import SuiteError, load_suite
from facebench.suite.schema import Suite

__all__ = ["Suite", "SuiteError", "load_suite"]
