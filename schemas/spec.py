"""SystemSpec: a machine's topology (components, sensors, connections, fault modes).

A spec is read from YAML or JSON with :func:`load_spec` or from a mapping with
:func:`parse_spec`; both raise :class:`SpecError`, whose issues read
``connections[3].target: unknown component 'pmp'`` whether the problem is structural (a missing
field, a bad unit) or a cross-reference (a dangling id, a duplicate).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from schemas.ids import Identifier
from schemas.issues import IssueError, validation_issues
from schemas.references import cross_reference_issues
from schemas.vocabulary import (
    CONNECTION_TYPES,
    SENSOR_KINDS,
    ConnectionType,
    SensorKind,
    accepted_units,
    unit_is_accepted,
)

SPEC_SCHEMA_VERSION: Final = 1
"""Version of the SystemSpec document format."""


class SpecError(IssueError):
    """A machine description is invalid or unreadable.

    Attributes:
        issues: Every problem found, as ``(path, message)``; ``str()`` gives one per line.
    """


def _check_range(value: tuple[float, float]) -> tuple[float, float]:
    low, high = value
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"range bounds must be finite numbers, got [{low}, {high}]")
    if low > high:
        raise ValueError(f"min {low:g} is greater than max {high:g}")
    return value


Range = Annotated[tuple[float, float], AfterValidator(_check_range)]
"""A closed ``[min, max]`` interval with ``min <= max``."""

_STRICT = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _choice_error(what: str, value: object, known: Iterable[str]) -> ValueError:
    return ValueError(f"unknown {what} {value!r}; expected one of: {', '.join(known)}")


class Component(BaseModel):
    """A physical part of the machine (pump, valve, spindle bearing, ...).

    Attributes:
        id: Unique component id.
        type: Free-form component type (``hydraulic_pump``); embedded by the model as text.
        description: What it is, for people.
    """

    model_config = _STRICT

    id: Identifier
    type: Identifier
    description: str | None = None


class Sensor(BaseModel):
    """A measured signal attached to one component.

    Attributes:
        id: Unique sensor id.
        component: Id of the component the sensor sits on.
        kind: What it measures, one of :data:`~schemas.vocabulary.SENSOR_KINDS`.
        unit: Engineering unit, one of the units accepted for ``kind``.
        sample_rate_hz: Nominal sampling rate.
        normal: Range of readings in healthy operation.
        critical: Range beyond which the machine is in danger; contains ``normal``.
        description: What it is, for people.
    """

    model_config = _STRICT

    id: Identifier
    component: Identifier
    kind: SensorKind
    unit: str = Field(min_length=1)
    sample_rate_hz: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    normal: Range
    critical: Range
    description: str | None = None

    @field_validator("kind", mode="before")
    @classmethod
    def _known_kind(cls, value: object) -> object:
        if isinstance(value, str) and value not in SENSOR_KINDS:
            raise _choice_error("sensor kind", value, SENSOR_KINDS)
        return value

    @field_validator("unit")
    @classmethod
    def _unit_fits_kind(cls, value: str, info: ValidationInfo) -> str:
        kind = info.data.get("kind")
        if kind is not None and not unit_is_accepted(kind, value):
            units = ", ".join(accepted_units(kind))
            raise ValueError(
                f"unknown unit {value!r} for a {kind} sensor; expected one of: {units}"
            )
        return value

    @field_validator("critical")
    @classmethod
    def _critical_contains_normal(
        cls, value: tuple[float, float], info: ValidationInfo
    ) -> tuple[float, float]:
        normal = info.data.get("normal")
        if normal is not None and not (value[0] <= normal[0] and normal[1] <= value[1]):
            raise ValueError(
                f"normal range [{normal[0]:g}, {normal[1]:g}] is not inside "
                f"critical range [{value[0]:g}, {value[1]:g}]"
            )
        return value


class Connection(BaseModel):
    """A physical link between two components, directed from ``source`` to ``target``.

    Attributes:
        source: Id of the upstream component.
        target: Id of the downstream component.
        type: Kind of link, one of :data:`~schemas.vocabulary.CONNECTION_TYPES`.
        attributes: Numeric properties of the link (``length_m``, ``diameter_mm``, ...),
            available to the model as edge features.
    """

    model_config = _STRICT

    source: Identifier
    target: Identifier
    type: ConnectionType
    attributes: dict[str, Annotated[float, Field(allow_inf_nan=False)]] = Field(
        default_factory=dict
    )

    @field_validator("type", mode="before")
    @classmethod
    def _known_type(cls, value: object) -> object:
        if isinstance(value, str) and value not in CONNECTION_TYPES:
            raise _choice_error("connection type", value, CONNECTION_TYPES)
        return value

    @field_validator("target")
    @classmethod
    def _not_a_self_loop(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("source") == value:
            raise ValueError(f"self-loop: source and target are both {value!r}")
        return value


class FaultMode(BaseModel):
    """A way one component can fail, and the sensors where it shows.

    Attributes:
        id: Unique fault id (``pump_internal_leak``); ``normal`` is reserved.
        component: Id of the failing component.
        description: What happens physically.
        affected_sensors: Ids of the sensors whose readings the fault moves (at least one).
    """

    model_config = _STRICT

    id: Identifier
    component: Identifier
    description: str | None = None
    affected_sensors: list[Identifier] = Field(min_length=1)

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value == "normal":
            raise ValueError("'normal' is reserved for the absence of a fault")
        return value


class SystemSpec(BaseModel):
    """A machine: components carrying sensors, joined by connections, with its fault modes.

    Attributes:
        schema_version: Document format version, always 1 for now.
        name: Machine name (``excavator``).
        description: What the machine is, for people.
        components: The parts, in a stable order (the model's component index).
        sensors: The signals, in a stable order (the model's sensor index).
        connections: Physical links between components.
        fault_modes: Known ways the machine fails.
    """

    model_config = _STRICT

    schema_version: Literal[1] = SPEC_SCHEMA_VERSION
    name: Identifier
    description: str | None = None
    components: list[Component] = Field(default_factory=list)
    sensors: list[Sensor] = Field(default_factory=list)
    connections: list[Connection] = Field(default_factory=list)
    fault_modes: list[FaultMode] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references_resolve(self) -> SystemSpec:
        issues = cross_reference_issues(self)
        if issues:
            raise SpecError(issues)
        return self

    @cached_property
    def component_ids(self) -> tuple[str, ...]:
        """Component ids in spec order."""
        return tuple(component.id for component in self.components)

    @cached_property
    def sensor_ids(self) -> tuple[str, ...]:
        """Sensor ids in spec order."""
        return tuple(sensor.id for sensor in self.sensors)

    @cached_property
    def fault_ids(self) -> tuple[str, ...]:
        """Fault mode ids in spec order."""
        return tuple(fault.id for fault in self.fault_modes)

    @cached_property
    def component_index(self) -> dict[str, int]:
        """Position of each component id in :attr:`components`."""
        return {cid: index for index, cid in enumerate(self.component_ids)}

    @cached_property
    def sensor_index(self) -> dict[str, int]:
        """Position of each sensor id in :attr:`sensors`."""
        return {sid: index for index, sid in enumerate(self.sensor_ids)}

    @cached_property
    def fault_index(self) -> dict[str, int]:
        """Position of each fault id in :attr:`fault_modes`."""
        return {fid: index for index, fid in enumerate(self.fault_ids)}

    @cached_property
    def _sensors_by_component(self) -> dict[str, tuple[Sensor, ...]]:
        grouped: dict[str, list[Sensor]] = {cid: [] for cid in self.component_ids}
        for sensor in self.sensors:
            grouped[sensor.component].append(sensor)
        return {cid: tuple(sensors) for cid, sensors in grouped.items()}

    def sensors_of(self, component: str) -> tuple[Sensor, ...]:
        """Sensors on one component, in spec order.

        Raises:
            KeyError: ``component`` is not a component of this machine.
        """
        return self._sensors_by_component[component]

    def sensor(self, sensor_id: str) -> Sensor:
        """The sensor with id ``sensor_id``.

        Raises:
            KeyError: No such sensor.
        """
        return self.sensors[self.sensor_index[sensor_id]]

    def fault_mode(self, fault_id: str) -> FaultMode:
        """The fault mode with id ``fault_id``.

        Raises:
            KeyError: No such fault mode.
        """
        return self.fault_modes[self.fault_index[fault_id]]

    def fault_modes_of(self, component: str) -> tuple[FaultMode, ...]:
        """Fault modes of one component, in spec order."""
        return tuple(fault for fault in self.fault_modes if fault.component == component)


def parse_spec(data: Mapping[str, Any]) -> SystemSpec:
    """Validate a machine description given as a mapping (parsed YAML or JSON).

    Args:
        data: The document.

    Returns:
        The validated spec.

    Raises:
        SpecError: With one issue per problem found.
    """
    if not isinstance(data, Mapping):
        raise SpecError([("<root>", f"expected a mapping, got {type(data).__name__}")])
    try:
        return SystemSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(validation_issues(exc)) from None


def _describe_yaml_error(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        return f"line {mark.line + 1}, column {mark.column + 1}: {what}"
    return " ".join(str(exc).split())


def load_spec(path: str | Path) -> SystemSpec:
    """Read and validate a machine description from a ``.yaml``/``.yml`` or ``.json`` file.

    Args:
        path: The file.

    Returns:
        The validated spec.

    Raises:
        SpecError: The file is unreadable, is not valid YAML/JSON, or describes an invalid
            machine; every issue path is prefixed with the file name for a parse failure.
    """
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        message = f"unsupported file type {suffix!r}; use .yaml, .yml or .json"
        raise SpecError([(str(file), message)])
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([(str(file), f"cannot read file: {exc}")]) from None
    try:
        data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        message = f"invalid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}"
        raise SpecError([(str(file), message)]) from None
    except yaml.YAMLError as exc:
        raise SpecError([(str(file), f"invalid YAML: {_describe_yaml_error(exc)}")]) from None
    return parse_spec(data)
