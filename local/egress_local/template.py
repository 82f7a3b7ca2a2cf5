"""Settings the local stack takes from the SAM template (`infra/template.yaml`) rather than
repeating them, so the local stack cannot drift from what is deployed where the difference
matters to security: the requests table's index projection (what a reviewer-facing read can
return) and the web app client's settings (how a user may sign in, how long a token lasts,
what a user may read or change about themself).

Only literal values are read; a setting built with an intrinsic function (`!If`, `!Ref`)
cannot be mirrored and stops provisioning with a clear error.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .settings import ROOT

TEMPLATE_FILE = ROOT / "infra" / "template.yaml"


class TemplateError(Exception):
    """The template does not hold the literal setting the local stack mirrors."""


class _TemplateLoader(yaml.SafeLoader):
    """A CloudFormation template: intrinsic-function tags (`!Ref`, `!Sub`...) load as plain
    values, which is all that reading literal settings needs."""


def _untagged(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_scalar(node)


_TemplateLoader.add_multi_constructor("!", _untagged)


def load(template: Path = TEMPLATE_FILE) -> dict:
    """The template's `Resources`."""
    document = yaml.load(template.read_text(encoding="utf-8"), Loader=_TemplateLoader)
    resources = document.get("Resources") if isinstance(document, dict) else None
    if not isinstance(resources, dict):
        raise TemplateError(f"{template} has no Resources")
    return resources


def load_globals(template: Path = TEMPLATE_FILE) -> dict:
    """The template's SAM `Globals` (empty when it has none)."""
    document = yaml.load(template.read_text(encoding="utf-8"), Loader=_TemplateLoader)
    found = document.get("Globals") if isinstance(document, dict) else None
    return found if isinstance(found, dict) else {}


def _properties(resources: dict, logical_id: str) -> dict:
    props = (resources.get(logical_id) or {}).get("Properties")
    if not isinstance(props, dict):
        raise TemplateError(f"the template has no {logical_id} to mirror")
    return props


def _names(value, what: str) -> list[str]:
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise TemplateError(f"{what} is not a literal list of names")
    return value


def client_attributes(resources: dict, logical_id: str) -> dict[str, list[str]]:
    """`ReadAttributes` and `WriteAttributes` of an app client, each only when the template
    sets it (left out, Cognito's default applies: every attribute)."""
    props = _properties(resources, logical_id)
    return {
        key: _names(props[key], f"{logical_id}.{key}")
        for key in ("ReadAttributes", "WriteAttributes")
        if props.get(key) is not None
    }


# The app client settings the local web client mirrors: who may sign in how (auth flows),
# for how long a token is good, and what a user may read or write about themself.
CLIENT_NAME_LISTS = ("ExplicitAuthFlows", "ReadAttributes", "WriteAttributes")
CLIENT_VALIDITIES = ("AccessTokenValidity", "IdTokenValidity", "RefreshTokenValidity")
CLIENT_SETTINGS = CLIENT_NAME_LISTS + CLIENT_VALIDITIES + ("TokenValidityUnits",)


def client_settings(resources: dict, logical_id: str) -> dict:
    """The settings of an app client named in `CLIENT_SETTINGS`, each only when the template
    sets it (left out, Cognito's default applies). Each must be literal."""
    props = _properties(resources, logical_id)
    settings: dict = {}
    for key in CLIENT_NAME_LISTS:
        if props.get(key) is not None:
            settings[key] = _names(props[key], f"{logical_id}.{key}")
    for key in CLIENT_VALIDITIES:
        value = props.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise TemplateError(f"{logical_id}.{key} is not a literal number")
        settings[key] = value
    units = props.get("TokenValidityUnits")
    if units is not None:
        if not (isinstance(units, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in units.items())):
            raise TemplateError(f"{logical_id}.TokenValidityUnits is not a literal map of units")
        settings["TokenValidityUnits"] = dict(units)
    return settings


def index_projections(resources: dict, logical_id: str) -> dict[str, dict]:
    """The `Projection` of each global secondary index of a table, by index name."""
    projections = {}
    for index in _properties(resources, logical_id).get("GlobalSecondaryIndexes") or []:
        name = index.get("IndexName")
        projection = index.get("Projection")
        if not isinstance(name, str) or not isinstance(projection, dict):
            raise TemplateError(f"{logical_id}: an index without a literal name or projection")
        kind = projection.get("ProjectionType", "KEYS_ONLY")
        if kind not in ("ALL", "KEYS_ONLY", "INCLUDE"):
            raise TemplateError(f"{logical_id}.{name}: projection type {kind!r} is not literal")
        out = {"ProjectionType": kind}
        if kind == "INCLUDE":
            out["NonKeyAttributes"] = _names(projection.get("NonKeyAttributes"), f"{logical_id}.{name}.NonKeyAttributes")
        projections[name] = out
    return projections
