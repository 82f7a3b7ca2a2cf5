"""One reviewer-group rule: the template's parameter patterns and the gate's schema renderer
agree with infra/fixtures/group-lists.json, the fixture the Rust domain
(shared::domain::review::ReviewPolicy::from_groups) and the local API's renderer
(local/appsync/lib/render-schema.mjs) are tested against too."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

VALIDATE_DIR = Path(__file__).resolve().parents[1]
INFRA_DIR = VALIDATE_DIR.parent
sys.path.insert(0, str(VALIDATE_DIR))

import gatelib  # noqa: E402

CASES = json.loads((INFRA_DIR / "fixtures" / "group-lists.json").read_text())["cases"]
PARAMETERS = {
    "ig": "IgReviewerGroupName",
    "rit": "RitReviewerGroupName",
    "download": "DownloadGroups",
    "admin": "AdminGroupName",
}


def _settings(case: dict) -> tuple[str, str, str, str]:
    # A case naming no admin group is deployed with AdminGroupName's default.
    return case["ig"], case["rit"], case["download"], case.get("admin", gatelib.DEFAULT_ADMIN_GROUP)


def load_template() -> dict:
    class Loader(yaml.SafeLoader):
        pass

    # CloudFormation's short-form tags (!Ref, !Sub, ...) as plain values: only Parameters matter.
    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    return yaml.load((INFRA_DIR / "template.yaml").read_text(), Loader=Loader)


PATTERNS = {key: load_template()["Parameters"][name]["AllowedPattern"] for key, name in PARAMETERS.items()}


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['ig']}|{c['rit']}|{c['download']}|{c.get('admin', '')}"[:60])
def test_when_a_fixture_case_is_rendered_then_the_gate_gives_its_lists_or_names_its_setting(case):
    if "error" in case:
        with pytest.raises(gatelib.GateError, match=f"^{case['error']} "):
            gatelib.group_lists(*_settings(case))
    else:
        assert gatelib.group_lists(*_settings(case)) == case["expect"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['ig']}|{c['rit']}|{c['download']}|{c.get('admin', '')}"[:60])
def test_when_a_fixture_case_is_deployed_then_the_template_patterns_agree(case):
    # A setting the rule refuses is refused by its parameter's AllowedPattern at deploy; the
    # one cross-setting rule (the two stages' groups differ) is the gate's (render_schema).
    values = dict(zip(PARAMETERS, _settings(case)))
    accepted = {key: re.fullmatch(PATTERNS[key], values[key]) is not None for key in PARAMETERS}
    if "error" not in case or "must differ" in _error_text(case):
        assert all(accepted.values()), accepted
    else:
        bad = {
            "IG_REVIEWER_GROUP": "ig",
            "RIT_REVIEWER_GROUP": "rit",
            "DOWNLOAD_GROUPS": "download",
            "ADMIN_GROUP": "admin",
        }
        assert not accepted[bad[case["error"]]], case


def _error_text(case: dict) -> str:
    try:
        gatelib.group_lists(*_settings(case))
    except gatelib.GateError as err:
        return str(err)
    return ""
