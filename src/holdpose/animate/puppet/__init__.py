"""Pieces of the warp animator's puppet: which pixels each layer takes (:mod:`.layers`) and how
the holes they leave are filled (:mod:`.fill`). The rig and the renderer are in
:mod:`holdpose.animate.warp`."""
