"""Pack/unpack handles of ``torch.autograd.graph.saved_tensors_hooks``.

Every tensor autograd saves is packed into a handle holding ``t.detach()`` (never ``t``: that would make
reference cycles) plus its version, storage key and size.  The handle's ``__del__`` posts a
:class:`~gradlint.runtime.events.HandleReleased` when autograd releases it.  PyTorch skips its own
version-counter check while such hooks are installed, so unpack checks the version itself.
"""

from __future__ import annotations

from .events import HandleReleased

_new_tuple = tuple.__new__  # builds the named event without its Python-level __new__ (once per saved tensor)


class Packed:
    """What the pack hook returns: the detached tensor plus bookkeeping (no reference to ``t``)."""

    __slots__ = ("t", "v", "key", "nb", "dev", "leaf", "tag", "sink", "__weakref__")

    def __del__(self):
        s = self.sink
        if s.open:
            s.q.append(_new_tuple(HandleReleased, (self.key, self.tag, self.nb, self.dev, self.leaf)))
        else:  # after stop(): keep the node's alive/freed state exact for node_info()
            tag = self.tag
            if tag is not None:
                tag.saved_alive -= 1


class Light:
    """Cheap handle used between sampled iterations: only keeps the version check."""

    __slots__ = ("t", "v")

    def __init__(self, t, v):
        self.t = t
        self.v = v


class SavedTensorHooks:
    """The pack/unpack pair.  ``pending`` collects the handles packed during one torch call (the function
    mode hands them to the node that call created); ``light`` switches to version-check-only handles."""

    def __init__(self, sink, lock, ledger, drain, on_stale):
        self.sink = sink
        self.lock = lock
        self.ledger = ledger
        self.drain = drain
        self.on_stale = on_stale  # (handle) -> exception to raise
        self.pending = None
        self.light = False

    def pack(self, t):
        if self.light:
            self.ledger.light_saved += 1
            return Light(t.detach(), t._version)
        h = Packed()
        leaf = t.is_leaf  # (grad_fn is None) without wrapping the node for Python
        # a leaf cannot reach the node that saves it, so holding it makes no cycle (autograd holds it too);
        # anything else may be the node's own output: detached, or node -> handle -> tensor -> node
        h.t = t if leaf else t.detach()
        h.v = t._version
        h.sink = self.sink
        h.tag = None
        try:
            st = t.untyped_storage()
            key = st.data_ptr()  # the storage key of memory.storage_key
            nb = st.nbytes()
        except Exception:
            key, nb = None, 0
        if not leaf and t._is_view():
            b = t._base
            leaf = b is not None and b.is_leaf
        ledger = self.ledger
        dev = ledger.dev_names.get(t.device)
        if dev is None:
            dev = ledger.dev_name(t.device)
        h.key = key
        h.dev = dev
        h.leaf = leaf
        with self.lock:
            if self.sink.q:
                self.drain()
            h.nb = ledger.on_pack(h, key, nb, dev, leaf)
            pend = self.pending
            if pend is not None:
                pend.append(h)
            else:
                ledger.orphans += 1
        return h

    def unpack(self, h):
        t = h.t
        if t._version != h.v:
            raise self.on_stale(h)
        return t
