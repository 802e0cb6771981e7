"""Compiling submissions: the ``compile`` job and the ``sio.compilers`` entry points.

Other distributions may add modules to this package (as with the original
sioworkers), so its path is extended over every installed copy.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
