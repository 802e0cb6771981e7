"""Judging jobs: the ``exec`` family, checkers, ``ingen``, ``inwer``, interactive tasks.

Other distributions may add modules to this package (as with the original
sioworkers), so its path is extended over every installed copy.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
