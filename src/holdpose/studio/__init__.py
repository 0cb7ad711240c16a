"""The pose studio: see and edit a pose sequence in the browser (``holdpose studio``).

:func:`start_studio` serves one pose file (with its video, animation and reference when
given) on 127.0.0.1 behind a random token; the page is plain HTML, CSS and JavaScript
shipped in ``static/``. :class:`PoseDocument` is the editing model behind it and works
without a browser.
"""

from holdpose.studio.document import EditError, PoseDocument
from holdpose.studio.server import Studio, StudioServer, start_studio

__all__ = ["EditError", "PoseDocument", "Studio", "StudioServer", "start_studio"]
