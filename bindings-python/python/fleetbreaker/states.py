"""What a circuit looks like: its state, what a caller sees of it, and its transitions."""

from __future__ import annotations

# Lean imports on purpose: this module loads at every cold start. ``CircuitState`` is loaded on
# first use (see ``_circuit_state``).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ClassVar, Dict, Optional, Tuple, Type

    from typing_extensions import dataclass_transform

    from ._circuit_state import CircuitState
else:

    def dataclass_transform(**_: object) -> object:
        """Only type checkers read it (``typing_extensions`` is not needed at run time)."""
        return lambda cls: cls

__all__ = ["CircuitState", "CircuitInfo", "CircuitTransition"]


def __getattr__(name: str) -> Any:
    if name == "CircuitState":
        return _circuit_state_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _circuit_state_class() -> Type[CircuitState]:
    from ._circuit_state import CircuitState

    return CircuitState


def _shown(fields: Dict[str, Any]) -> Dict[str, Any]:
    """The native fields (``fleetbreaker::embed``) as the package shows them: a time or
    duration ``x_ms`` as ``x`` in seconds (as Powertools does), a state as ``CircuitState``."""
    state = _circuit_state_class()
    shown = {}
    for name, value in fields.items():
        if name.endswith("_ms"):
            name, value = name[:-3], None if value is None else value / 1000.0
        elif name.endswith("state"):
            value = state(value)
        shown[name] = value
    return shown


@dataclass_transform(frozen_default=True)
class _DataclassOnDemand(type):
    """The metaclass of small frozen dataclasses whose fields are declared once, as annotated
    class attributes (with their defaults): the slots, ``__match_args__`` and the defaults are
    made from them.

    They are dataclasses in the eyes of the ``dataclasses`` module (``fields``, ``asdict``,
    ``replace``, ``is_dataclass``) from the first time it looks, so that importing fleetbreaker
    does not import ``dataclasses`` (and ``inspect``): a cold start pays for it only if the
    program uses it."""

    def __new__(mcs, name: str, bases: Tuple[type, ...], namespace: Dict[str, Any]) -> Any:
        fields = tuple(f for f in namespace.get("__annotations__", {}) if not f.startswith("_"))
        namespace["_defaults"] = {f: namespace.pop(f) for f in fields if f in namespace}
        namespace["__slots__"] = namespace["__match_args__"] = fields
        return super().__new__(mcs, name, bases, namespace)

    def __getattr__(cls, name: str) -> Any:
        if name in ("__dataclass_fields__", "__dataclass_params__"):
            _make_dataclass(cls)
            return type.__getattribute__(cls, name)
        raise AttributeError(f"type object {cls.__name__!r} has no attribute {name!r}")


def _make_dataclass(cls: Any) -> None:
    import dataclasses

    shadow = dataclasses.make_dataclass(
        cls.__name__,
        [(name, cls.__annotations__[name], dataclasses.field(default=cls._defaults.get(name, dataclasses.MISSING)))
         for name in cls.__slots__],
        frozen=True,
    )
    for name in ("__dataclass_fields__", "__dataclass_params__"):
        type.__setattr__(cls, name, getattr(shadow, name))


def _frozen_error(name: str) -> AttributeError:
    import dataclasses

    return dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


class _Frozen(metaclass=_DataclassOnDemand):
    """A small frozen dataclass: fields by keyword or position, equality, hash and repr by
    fields; assigning a field raises ``dataclasses.FrozenInstanceError``."""

    _defaults: ClassVar[Dict[str, Any]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fields, kind = self.__slots__, type(self).__name__
        if len(args) > len(fields):
            raise TypeError(f"{kind}() takes at most {len(fields)} positional arguments ({len(args)} given)")
        values = dict(zip(fields, args))
        for name, value in kwargs.items():
            if name not in fields or name in values:
                raise TypeError(f"{kind}() got an unexpected or repeated argument {name!r}")
            values[name] = value
        missing = [name for name in fields if name not in values and name not in self._defaults]
        if missing:
            raise TypeError(f"{kind}() is missing {', '.join(map(repr, missing))}")
        for name in fields:
            object.__setattr__(self, name, values[name] if name in values else self._defaults[name])

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: the dataclass attributes live on the class.
        if name in ("__dataclass_fields__", "__dataclass_params__"):
            return getattr(type(self), name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise _frozen_error(name)

    def __delattr__(self, name: str) -> None:
        raise _frozen_error(name)

    def _fields(self) -> Tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._fields() == other._fields()  # type: ignore[attr-defined,unused-ignore]

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), self._fields())

    def _asdict(self) -> Dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


class CircuitInfo(_Frozen):
    """What a call or an operator sees of a circuit (a frozen dataclass, as in Powertools).
    Times are Unix seconds; durations seconds.

    ``failure_count``: while closed, this environment's current run of failures; otherwise the
    failures seen by the environment that tripped the circuit. ``retry_after``: how long a
    rejected caller may wait before calls go through again, when known. ``local_only``: the
    store cannot be reached and this environment decides alone. ``slow_call_count``: of
    ``failure_count``, the slow calls (successes slower than ``slow_call``).
    """

    name: str
    state: CircuitState
    failure_count: int = 0
    opened_at: Optional[float] = None
    version: int = 0
    retry_after: Optional[float] = None
    open_until: Optional[float] = None
    override_reason: Optional[str] = None
    override_until: Optional[float] = None
    local_only: bool = False
    slow_call_count: int = 0

    @classmethod
    def _from_native(cls, fields: Any) -> CircuitInfo:
        return cls(**_shown(fields))


class CircuitTransition(_Frozen):
    """One change of a circuit, reported by the environment whose write made it (a frozen
    dataclass, as in Powertools).

    ``reason`` is one of ``tripped``, ``probe_started``, ``probe_taken_over``,
    ``probe_succeeded``, ``probe_released``, ``probe_failed``, ``recovered``, ``forced_open``,
    ``forced_closed``, ``override_expired``, ``reset``, ``reconciled``. With ``local_only`` the
    store could not be reached and only this environment changed. ``failure_count`` and
    ``slow_call_count``: the failures that tripped the circuit into this episode, and of them
    the slow calls (0 once it closed).
    """

    circuit_name: str
    from_state: CircuitState
    to_state: CircuitState
    opened_at: Optional[float] = None
    version: int = 0
    at: float = 0.0
    reason: str = ""
    override_reason: Optional[str] = None
    local_only: bool = False
    failure_count: int = 0
    slow_call_count: int = 0

    @classmethod
    def _from_native(cls, circuit: str, fields: Dict[str, Any]) -> CircuitTransition:
        return cls(circuit_name=circuit, **_shown(fields))
