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

    __slots__ = ("t", "v", "key", "size", "nb", "dev", "leaf", "tag", "sink", "__weakref__")

    def __del__(self):
        if self.nb < 0:  # never counted (its torch call raised before the ledger took it)
            return
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
        self.dev_names = ledger.dev_names

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
        h.nb = -1  # not in the ledger yet: its release must not be counted
        try:
            st = t.untyped_storage()
            h.key = st.data_ptr()  # the storage key of memory.storage_key
            h.size = st.nbytes()
        except Exception:
            h.key, h.size = None, 0
        if not leaf and t._is_view():
            b = t._base
            leaf = b is not None and b.is_leaf
        h.leaf = leaf
        dev = self.dev_names.get(t.device)
        h.dev = dev if dev is not None else self.ledger.dev_name(t.device)
        pend = self.pending
        if pend is not None:
            pend.append(
                h
            )  # the ledger takes it with the rest of the call's, in one pass (Trace._attach_saved)
        else:  # saved outside any torch call the mode saw (a backward with create_graph, a compiled region)
            with self.lock:
                if self.sink.q:
                    self.drain()
                self.register(h)
                self.ledger.orphans += 1
        return h

    def register(self, h):
        """Count ``h`` in the ledger (under the trace's lock, its queue drained: a storage released and a new
        one at the same address must be seen in that order)."""
        h.nb = self.ledger.on_pack(h, h.key, h.size, h.dev, h.leaf)

    def unpack(self, h):
        t = h.t
        if t._version != h.v:
            raise self.on_stale(h)
        return t
