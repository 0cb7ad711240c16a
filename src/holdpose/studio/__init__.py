"""The pose studio: see and edit a pose sequence in the browser (``holdpose studio``).

:func:`start_studio` serves one pose file (with its video, animation and reference when
given) on 127.0.0.1 behind a random token; the page is plain HTML, CSS and JavaScript
shipped in ``static/``. :class:`PoseDocument` is the editing model behind it and works
without a browser. Names load on first use, so ``holdpose --help`` imports none of this.
"""

_EXPORTS = {"EditError": "document", "PoseDocument": "document", "Studio": "server", "StudioServer": "server",
            "start_studio": "server"}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'holdpose.studio' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"holdpose.studio.{_EXPORTS[name]}"), name)
