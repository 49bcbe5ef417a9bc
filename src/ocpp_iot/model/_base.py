"""Base class and shared field types of the generated OCPP models (hand-written).

The generated modules (``v16``, ``v201``, ``v21``) import everything they need from here, so the
rules that turn JSON Schema keywords into pydantic constraints live in one place:

* ``type: string`` -> :data:`StrictStr` (no coercion from numbers or bytes);
* ``type: integer`` -> :data:`StrictInt` (rejects ``true``/``false``, ``"5"`` and ``5.0``);
* ``type: number`` -> ``StrictInt | StrictFloat`` so ``5`` stays an ``int`` and ``5.0`` a
  ``float`` through a round trip;
* ``format: date-time`` -> :data:`DateTime`, a ``str`` checked against :data:`DATE_TIME_PATTERN`
  (RFC 3339 with real month lengths and leap years) and kept exactly as received;
* ``format: uri`` (two OCPP 1.6 fields) -> :data:`Uri`, a ``str`` that must start with a scheme and
  contain no whitespace;
* a property not in ``required`` -> ``Omittable[X]``: a type checker sees ``X | None`` (the
  attribute is ``None`` when the key was absent), while validation uses ``X`` alone, so an
  explicit JSON ``null`` is still refused (no OCPP schema lists ``"null"`` as a type).

No I/O, no clocks.
"""

# No ``from __future__ import annotations`` here: pydantic would evaluate the string
# annotations of this base class again for each of the ~800 generated subclasses.
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, NamedTuple, TypeAlias, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

__all__ = [
    "DATE_TIME_PATTERN",
    "URI_PATTERN",
    "Action",
    "DateTime",
    "Uri",
    "OcppModel",
    "Omittable",
    "OpenOcppModel",
    "StrictFloat",
    "StrictInt",
    "StrictStr",
]

_YEAR = "(?:[0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})"
_MONTH_DAY = (
    "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    "|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_LEAP_YEAR = "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_TIME = (
    "T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]+)?"
    "(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)

#: RFC 3339 ``date-time`` as JSON Schema's ``format`` means it: upper-case ``T`` and ``Z``,
#: month lengths and leap years checked, year 0000 and leap seconds refused (the same set the
#: ``jsonschema`` format checker accepts). Written for both Rust ``regex`` and Python ``re``.
DATE_TIME_PATTERN = f"^(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29){_TIME}$"

#: ``format: uri``: an absolute URI (scheme, colon, then no whitespace or control characters).
URI_PATTERN = "^[A-Za-z][A-Za-z0-9+.-]*:[^\\x00-\\x20\\x7f]*$"

DateTime = Annotated[StrictStr, Field(pattern=DATE_TIME_PATTERN)]
Uri = Annotated[StrictStr, Field(pattern=URI_PATTERN)]

_T = TypeVar("_T")

if TYPE_CHECKING:
    #: An optional property (JSON Schema: not in ``required``): ``X | None`` to a type checker,
    #: since the attribute holds ``None`` when the key is absent.
    Omittable: TypeAlias = _T | None
else:

    class Omittable:
        """At run time ``Omittable[X]`` is ``X`` itself: pydantic validates a present key
        against ``X``, which refuses ``None``, and the ``None`` default (pydantic does not
        validate defaults) stands for "absent". The validator is the same one a plain ``X``
        annotation builds, so this costs nothing per frame."""

        def __class_getitem__(cls, item: Any) -> Any:
            return item


class OcppModel(BaseModel):
    """Base of every generated OCPP message, enum-free data type and payload.

    Attributes are snake_case with an explicit alias equal to the schema's field name; both
    names are accepted on construction and :meth:`to_payload` writes the aliases.
    """

    model_config = ConfigDict(
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        protected_namespaces=(),
        use_enum_values=False,
        defer_build=True,
    )

    #: Name of the JSON schema definition (or derived name in 1.6) this class was generated from.
    schema_name: ClassVar[str] = ""

    def to_payload(self) -> dict[str, Any]:
        """The JSON-level value of this model: exactly the fields that were set, by alias."""
        return self.model_dump(by_alias=True, exclude_unset=True, mode="json")


class OpenOcppModel(OcppModel):
    """An object whose schema allows additional properties (``CustomDataType``)."""

    model_config = ConfigDict(extra="allow")


class Action(NamedTuple):
    """One OCPP action of a version: its models, who sends the CALL, and the handler's name."""

    name: str
    request: type["OcppModel"]
    response: type["OcppModel"] | None  # None only for SEND-only actions (2.1)
    initiator: Literal["charger", "charge_system", "both"]
    method: str
