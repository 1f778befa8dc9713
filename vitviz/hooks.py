"""Temporary changes to a model: forward hooks and attribute swaps, every one undone on exit.

One mechanism for everything in vitviz that must look inside or change a stock timm model for the length of a
pass (as zennit's composites and captum's hook handling do): the attention recorder of ``vitviz.capture``, the
activation recorder of ``chefer2021``, the recorded outputs of the gradient methods and the LRP rules' forwards
(CP-LRP and AttnLRP, ``vitviz.attribution._rules``).

    >>> with Edits() as edits:
    ...     calls = edits.forward_hook(model.blocks[0], lambda module, args, output: None, required=True)
    ...     edits.set(model.blocks[0].attn, "fused_attn", False)
    ...     model(x)
    >>> # hooks removed, ``fused_attn`` back as it was; HookNeverFired had the hook not run

``Edits`` is a :class:`contextlib.ExitStack`: changes are undone in reverse order, all of them even when one
undo step fails, and an exception raised inside the block is never swallowed.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

__all__ = ["Edits", "Hook", "HookNeverFired"]

_MISSING = object()


class HookNeverFired(RuntimeError):
    """A hook that was marked ``required`` never ran: what it should have recorded does not exist."""


class Hook:
    """A registered hook and how often it ran.

    Attributes:
        module: The module it is registered on.
        kind: ``'forward'`` or ``'forward_pre'``.
        calls: How many times it ran so far.
        required: Whether leaving the :class:`Edits` without error needs it to have run at least once.
    """

    def __init__(self, module: nn.Module, kind: str, required: bool) -> None:
        self.module = module
        self.kind = kind
        self.required = required
        self.calls = 0

    def __repr__(self) -> str:
        return f"<Hook {self.kind} on {type(self.module).__name__}: {self.calls} calls>"


class Edits(contextlib.ExitStack):
    """Forward hooks and attribute swaps that last until the ``with`` block ends (success or error).

    On a clean exit, a hook registered with ``required=True`` that never ran raises :class:`HookNeverFired`
    (after everything is undone).
    """

    def __init__(self) -> None:
        super().__init__()
        self.hooks: list[Hook] = []

    def forward_hook(self, module: nn.Module, fn: Callable, *, required: bool = False) -> Hook:
        """Register ``fn(module, args, output)`` as a forward hook until exit."""
        return self._register(module, fn, "forward", required)

    def forward_pre_hook(self, module: nn.Module, fn: Callable, *, required: bool = False) -> Hook:
        """Register ``fn(module, args)`` as a forward pre-hook until exit."""
        return self._register(module, fn, "forward_pre", required)

    def _register(self, module: nn.Module, fn: Callable, kind: str, required: bool) -> Hook:
        hook = Hook(module, kind, required)

        def counted(*args):
            hook.calls += 1
            return fn(*args)

        register = module.register_forward_hook if kind == "forward" else module.register_forward_pre_hook
        handle = register(counted)
        self.callback(handle.remove)
        self.hooks.append(hook)
        return hook

    def set(self, obj: object, name: str, value: object) -> None:
        """Set ``obj.name = value`` until exit; then put back the instance's own value, or delete the
        instance attribute when it had none (a swapped ``module.forward`` gives the class's method back)."""
        old = vars(obj).get(name, _MISSING)
        setattr(obj, name, value)
        self.callback(_restore, obj, name, old)

    def swap_forward(self, module: nn.Module, forward: Callable) -> None:
        """Run ``forward`` instead of ``module.forward`` until exit."""
        self.set(module, "forward", forward)

    def __exit__(self, *exc_info) -> bool:
        suppressed = super().__exit__(*exc_info)
        if exc_info[0] is None:
            self.check_fired()
        return suppressed

    def check_fired(self) -> None:
        """Raise :class:`HookNeverFired` when a required hook has not run yet."""
        for hook in self.hooks:
            if hook.required and not hook.calls:
                raise HookNeverFired(f"{type(hook.module).__name__} never ran in the forward pass: its "
                                     f"{hook.kind} hook recorded nothing")


def _restore(obj: object, name: str, old: object) -> None:
    if old is _MISSING:
        delattr(obj, name)
    else:
        setattr(obj, name, old)
