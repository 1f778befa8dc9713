"""A second torch device on a CPU-only machine, for tests: ``vvfake``, PyTorch's PrivateUse1 backend in Python.

A GPU server puts every model on ``cuda`` (``vitviz.models.default_device``); code that forgets to move its
input there fails with "Expected all tensors to be on the same device". Without a GPU nothing shows that, so
this module gives torch a device that behaves like one where it matters:

- a tensor on it has ``device.type == "vvfake"`` and is moved there and back with ``.to()``/``.cpu()`` as with
  ``cuda``; ``module.to("vvfake")`` moves a model;
- an operation mixing a ``vvfake`` tensor with a CPU tensor (other than a 0-d scalar or integer indices, which
  CUDA accepts too) raises the error CUDA raises; ``.numpy()`` on it is refused, as on CUDA;
- every other operation computes what the CPU computes (the data lives in a CPU tensor, each operation runs
  on it with the CPU's kernel), so results on it equal the CPU's up to the order of floating-point sums.

``torch.tensor`` and ``torch.as_tensor`` are wrapped (once enabled) so that ``device="vvfake"`` makes the tensor
on the CPU and moves it: their C++ constructor copies with torch's Python dispatch turned off.

It is a wrapper tensor subclass (``__torch_dispatch__``) on the PrivateUse1 device, following PyTorch's own
python-backend test (``test/test_privateuseone_python_backend.py``) and albanD's subclass zoo ``new_device.py``.
Every operation goes through Python, so it is slow: use it with tiny models. Register it with :func:`enable`
(once per process: PyTorch lets the PrivateUse1 backend be named once).
"""
from __future__ import annotations

import functools
import threading

import torch
from torch.utils._pytree import tree_map

__all__ = ["NAME", "FakeDeviceTensor", "enable"]

NAME = "vvfake"
_MIXING_ALLOWED = {"aten::copy_", "aten::_copy_from", "aten::_copy_from_and_resize", "aten::index",
                   "aten::index.Tensor", "aten::index_put_", "aten::_index_put_impl_", "aten::index_put"}
_LOCK = threading.Lock()
_STATE = {"enabled": False}


class FakeDeviceTensor(torch.Tensor):
    """A tensor on the ``vvfake`` device; its values are the CPU tensor ``data``."""

    @staticmethod
    def __new__(cls, data: torch.Tensor) -> FakeDeviceTensor:
        # sizes and strides are asked of ``data`` each time (aten::sym_size ...), so in-place view operations
        # (squeeze_, transpose_ ...) show
        return torch.Tensor._make_wrapper_subclass(
            cls, data.shape, strides=data.stride(), storage_offset=data.storage_offset(), dtype=data.dtype,
            device=torch.device(NAME, 0), requires_grad=False, dispatch_sizes_strides_policy="sizes")

    def __init__(self, data: torch.Tensor) -> None:
        self.data_on_cpu = data

    def __repr__(self) -> str:
        return f"FakeDeviceTensor({self.data_on_cpu!r})"

    def tolist(self) -> list | float | int | bool:
        """As on CUDA: the values copied to Python (torch refuses ``tolist`` on a subclass by itself)."""
        return self.data_on_cpu.tolist()

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return _run(func, args, kwargs or {})


def _run(func, args, kwargs):
    """Run ``func`` on the CPU data of every ``vvfake`` tensor and wrap what it returns."""
    name = func._schema.name
    overload = f"{name}.{func._overloadname}"
    cpu, fake = [], []

    def unwrap(value):
        if isinstance(value, FakeDeviceTensor):
            fake.append(value)
            return value.data_on_cpu
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.is_floating_point():
            cpu.append(value)
        if isinstance(value, torch.device) and value.type == NAME:
            return torch.device("cpu")
        return value

    args_cpu, kwargs_cpu = tree_map(unwrap, args), tree_map(unwrap, kwargs)
    if cpu and fake and name not in _MIXING_ALLOWED and overload not in _MIXING_ALLOWED:
        raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, "
                           f"{NAME}:0 and cpu! (in {overload})")
    out = func(*args_cpu, **kwargs_cpu)
    if name == "aten::_to_copy":
        device = kwargs.get("device")
        if device is not None and torch.device(device).type != NAME:
            return out  # to another device (the CPU): a plain tensor
    if isinstance(out, torch.Tensor) and args and isinstance(args[0], torch.Tensor) and out is args_cpu[0]:
        return args[0]  # in place: the very tensor that came in
    return tree_map(lambda v: FakeDeviceTensor(v) if isinstance(v, torch.Tensor) else v, out)


def _run_boxed(op, *args, **kwargs):
    return _run(op, args, kwargs)


def _factory(op, *args, **kwargs):
    """Operations dispatched to the device itself (``torch.empty(..., device="vvfake")``, ``x.to("vvfake")``)."""
    return _run(op, args, kwargs)


def _factories() -> list:
    """aten factories (a ``device`` argument, no tensor argument) that have one kernel for every device: on
    ``vvfake`` they would fill an empty tensor in place, so they run whole on the CPU instead."""
    found = []
    for full in torch._C._dispatch_get_all_op_names():
        if not full.startswith("aten::") or not torch._C._dispatch_has_kernel_for_dispatch_key(
                full, "CompositeExplicitAutograd"):
            continue
        name, _, overload = full[len("aten::"):].partition(".")
        try:
            op = getattr(getattr(torch.ops.aten, name), overload or "default")
        except AttributeError:
            continue
        arguments = op._schema.arguments
        if any(a.name == "device" for a in arguments) and not any(
                isinstance(a.type, (torch.TensorType, torch.ListType, torch.OptionalType))
                and "Tensor" in str(a.type) for a in arguments):
            found.append(op)
    return found


def _through_the_cpu(constructor):
    """``torch.tensor`` / ``torch.as_tensor`` onto ``vvfake``: made on the CPU, then moved. (Their C++ constructor
    copies with torch's Python dispatch turned off, which a device written in Python cannot serve.)"""

    def construct(data, *args, device=None, **kwargs):
        if device is not None and torch.device(device).type == NAME:
            return constructor(data, *args, **kwargs).to(device)
        return constructor(data, *args, device=device, **kwargs)

    construct.__wrapped__ = constructor
    return construct


def enable() -> str:
    """Register the ``vvfake`` device (once per process) and return its name.

    Call it before the process's first backward pass: the autograd engine sizes its device queues once.
    """
    from torch.utils.backend_registration import _setup_privateuseone_for_python_backend

    with _LOCK:
        if not _STATE["enabled"]:
            _setup_privateuseone_for_python_backend(NAME)
            fallback = torch.library.Library("_", "IMPL")
            fallback.fallback(_factory, "PrivateUse1")
            kernels = torch.library.Library("aten", "IMPL")
            for op in _factories():
                kernels.impl(op, functools.partial(_run_boxed, op), "PrivateUse1")
            _STATE["libraries"] = (fallback, kernels)  # registrations last as long as their library objects
            torch.tensor = _through_the_cpu(torch.tensor)
            torch.as_tensor = _through_the_cpu(torch.as_tensor)
            _STATE["enabled"] = True
    return NAME
