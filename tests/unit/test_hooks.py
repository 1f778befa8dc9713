"""vitviz.hooks.Edits: the one mechanism for temporary hooks and attribute swaps."""
import pytest
import torch
from torch import nn

from vitviz.hooks import Edits, HookNeverFired


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(3, 3)
        self.second = nn.Linear(3, 2)
        self.flag = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))


def _state(model: nn.Module) -> list:
    """Everything an Edits could leave behind: hooks, instance forwards, the flag."""
    return [(name, len(m._forward_hooks), len(m._forward_pre_hooks), "forward" in vars(m))
            for name, m in model.named_modules()] + [model.flag]


def test_hooks_and_swaps_are_undone_after_success():
    model, x = Tiny(), torch.randn(4, 3)
    before, expected = _state(model), model(x)
    seen = []
    with Edits() as edits:
        hook = edits.forward_hook(model.first, lambda m, args, out: seen.append(out.shape), required=True)
        edits.forward_pre_hook(model.second, lambda m, args: seen.append("pre"))
        edits.set(model, "flag", False)
        edits.swap_forward(model.second, lambda h: torch.zeros(h.shape[0], 2))
        assert not model.flag and torch.equal(model(x), torch.zeros(4, 2))
    assert hook.calls == 1 and seen == [torch.Size([4, 3]), "pre"]
    assert _state(model) == before and torch.equal(model(x), expected)
    assert len(seen) == 2  # the hooks are gone: the last pass recorded nothing


def test_hooks_and_swaps_are_undone_after_an_injected_error():
    model = Tiny()
    before = _state(model)

    def boom(module, args, output):
        raise RuntimeError("injected")

    with pytest.raises(RuntimeError, match="injected"):
        with Edits() as edits:
            edits.set(model, "flag", False)
            edits.swap_forward(model.first, lambda x: x * 2)
            edits.forward_hook(model.second, boom, required=True)
            model(torch.randn(1, 3))
    assert _state(model) == before


def test_an_instance_forward_that_was_there_is_put_back():
    model = Tiny()
    own = lambda x: x + 1  # noqa: E731
    model.first.forward = own
    with Edits() as edits:
        edits.swap_forward(model.first, lambda x: x - 1)
    assert vars(model.first)["forward"] is own


def test_a_required_hook_that_never_fired_is_an_error_after_everything_is_undone():
    model = Tiny()
    before = _state(model)
    with pytest.raises(HookNeverFired, match="Linear never ran"):
        with Edits() as edits:
            edits.forward_hook(model.second, lambda m, args, out: None, required=True)
            edits.set(model, "flag", False)
            model.first(torch.randn(1, 3))  # the second layer never runs
    assert _state(model) == before


def test_an_error_inside_the_block_wins_over_a_hook_that_never_fired():
    model = Tiny()
    with pytest.raises(ValueError, match="first"):
        with Edits() as edits:
            edits.forward_hook(model.second, lambda m, args, out: None, required=True)
            raise ValueError("first")
    assert _state(model) == _state(Tiny())


def test_an_optional_hook_may_stay_silent():
    model = Tiny()
    with Edits() as edits:
        hook = edits.forward_hook(model.second, lambda m, args, out: None)
    assert hook.calls == 0 and not model.second._forward_hooks
