"""The memory ledger: bytes of saved tensors alive per device and per storage, per iteration counts of
nodes and saved bytes, peaks and the per-iteration records of the report."""

from __future__ import annotations

import weakref

import torch


class Stored:
    """One storage autograd saved (shared by every saved view of it): counted once."""

    __slots__ = ("count", "nbytes", "dev", "leaf", "handle", "mutation")

    def __init__(self, nbytes, dev, leaf, handle):
        self.count = 1
        self.nbytes = nbytes
        self.dev = dev
        self.leaf = leaf
        self.handle = weakref.ref(handle)
        self.mutation = None  # (site, op name, path, extra) of the last in-place write gradlint saw


def storage_key(t):
    try:
        s = t.untyped_storage()
        return s.data_ptr(), s.nbytes()
    except Exception:
        return None, 0


class MemoryLedger:
    def __init__(self):
        self.storages: dict = {}
        self.saved_alive: dict[str, int] = {}  # dev -> activation bytes
        self.leaf_alive: dict[str, int] = {}  # dev -> bytes of saved leaves (weights, inputs)
        self.saved_peak: dict[str, int] = {}
        self.devices: set[str] = set()
        self.it_nodes: list[int] = [0]  # nodes alive, by the iteration that created them
        self.it_saved: list[int] = [0]  # activation bytes alive, by the iteration that saved them
        self.iterations: list[dict] = []
        self.cuda_on = False
        self.cuda_option = "auto"
        self.cuda_peak = 0
        self.nodes_alive = 0  # tagged nodes alive (all iterations)
        self.orphans = 0  # saved tensors no tagged node claimed
        self.light_saved = 0  # saved tensors of sampled-out iterations
        self.dev_names: dict = {}

    def dev_name(self, dev) -> str:
        s = self.dev_names.get(dev)
        if s is None:
            s = self.dev_names[dev] = str(dev)
        return s

    def start_cuda(self, cuda):
        self.cuda_option = cuda
        self.cuda_on = bool(
            cuda is True or (cuda == "auto" and torch.cuda.is_available() and torch.cuda.is_initialized())
        )
        if cuda is True and not torch.cuda.is_available():
            self.cuda_on = False
        if self.cuda_on:
            self.devices.add(f"cuda:{torch.cuda.current_device()}")
            torch.cuda.reset_peak_memory_stats()

    def on_pack(self, h, key, nb, dev, leaf):
        """A saved tensor was packed into handle ``h``; returns the bytes it adds (0: storage already counted)."""
        e = self.storages.get(key)
        if e is None:
            self.storages[key] = Stored(nb, dev, leaf, h)
            d = self.leaf_alive if leaf else self.saved_alive
            v = d.get(dev, 0) + nb
            d[dev] = v
            if not leaf and v > self.saved_peak.get(dev, 0):
                self.saved_peak[dev] = v
            self.devices.add(dev)
            return nb
        e.count += 1
        if e.handle() is None:
            e.handle = weakref.ref(h)
        return 0

    def on_release(self, key):
        e = self.storages.get(key)
        if e is not None:
            e.count -= 1
            if e.count <= 0:
                del self.storages[key]
                d = self.leaf_alive if e.leaf else self.saved_alive
                d[e.dev] = d.get(e.dev, 0) - e.nbytes

    def node_created(self):
        self.it_nodes[-1] += 1
        self.nodes_alive += 1

    def node_died(self, it):
        if it < len(self.it_nodes):
            self.it_nodes[it] -= 1
            self.nodes_alive -= 1

    def saved(self, nb):
        self.it_saved[-1] += nb

    def released(self, it, nb):
        if it < len(self.it_saved):
            self.it_saved[it] -= nb

    def end_iteration(self, index, traced):
        cuda_alloc = cuda_peak = 0
        if not self.cuda_on and self.cuda_option == "auto" and torch.cuda.is_initialized():
            # the traced code initialized CUDA itself (``gradlint trace train.py``): record from now on; the
            # peak of this first iteration is the peak since CUDA started
            self.cuda_on = True
            self.devices.add(f"cuda:{torch.cuda.current_device()}")
        if self.cuda_on:
            try:
                cuda_alloc = torch.cuda.memory_allocated()
                cuda_peak = torch.cuda.max_memory_allocated()
                self.cuda_peak = max(self.cuda_peak, cuda_peak)
                torch.cuda.reset_peak_memory_stats()
            except Exception:  # pragma: no cover
                pass
        self.iterations.append(
            {
                "index": index,
                "saved_bytes_alive_at_end": dict(self.saved_alive),
                "nodes_alive_at_end": max(0, self.nodes_alive),
                "cuda_allocated": int(cuda_alloc),
                "cuda_peak": int(cuda_peak),
                "traced": traced,
            }
        )
        self.it_nodes.append(0)
        self.it_saved.append(0)

    def peak_cuda(self) -> int:
        peak = self.cuda_peak
        if self.cuda_on:
            try:
                peak = max(peak, torch.cuda.max_memory_allocated())
            except Exception:  # pragma: no cover
                pass
        return int(peak)
