"""The TREEHOOSE egress web app's build configuration, for the local stack or a deployed one.

    python -m egress_local.webapp_env --app <web app checkout>                 # the running local stack
    python -m egress_local.webapp_env --app <checkout> --cfn-outputs out.json  # a deployed stack

The web app reads its settings only from `REACT_APP_*` variables at build time (its
`src/aws-config.js`); it has no setting for a Cognito endpoint and never enables Download
without `REACT_APP_MAX_DOWNLOADS_ALLOWED`. This writes every variable that file reads into
`.env.development.local` (used by `npm start`) and `.env.production.local` (used by
`npm run build`), which take precedence over the placeholders of the app's own `.env.local`
and leave that file alone. A variable the app reads that we cannot fill is an error naming it,
so a new release of the app cannot silently drift from what we provide.

`--cfn-outputs` takes the JSON of
`aws cloudformation describe-stacks --stack-name <name> --query "Stacks[0].Outputs"`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from .settings import state_path

CONFIG_FILE = Path("src") / "aws-config.js"
ENV_FILES = (".env.development.local", ".env.production.local")
READ_VARIABLE = re.compile(r"process\.env\.(REACT_APP_[A-Z0-9_]+)")

# The one variable we add to the app's reads: the local Cognito endpoint. The app has no such
# setting; the README gives the one-line override of its Amplify configuration that
# reads it (Amplify's `Auth.endpoint`). Deployed stacks never need it.
COGNITO_ENDPOINT_VARIABLE = "REACT_APP_COGNITO_ENDPOINT"


class WebAppEnvError(Exception):
    """A configuration that cannot be written; the message names what is wrong."""


def variables_read(app: Path) -> list[str]:
    """The `REACT_APP_*` variables the app's `src/aws-config.js` reads, in order."""
    config = app / CONFIG_FILE
    if not config.is_file():
        raise WebAppEnvError(f"{app} is not a checkout of the web app: {CONFIG_FILE} is missing")
    names: list[str] = []
    for name in READ_VARIABLE.findall(config.read_text(encoding="utf-8")):
        if name not in names:
            names.append(name)
    if not names:
        raise WebAppEnvError(f"{config} reads no REACT_APP_* variable; is this the TREEHOOSE egress web app?")
    return names


def local_values(outputs: dict, api: dict) -> dict[str, str]:
    """The values for the running local stack (`.local-stack/outputs.json` and `api.json`)."""
    project = outputs["project"]
    app_url = project["app_url"]
    return {
        "REACT_APP_APPSYNC_API": api["graphql_url"],
        "REACT_APP_REGION": outputs["region"],
        "REACT_APP_USER_POOL_ID": api["user_pool_id"],
        "REACT_APP_USER_POOL_CLIENT_ID": api["client_id"],
        # No hosted UI locally: the app's federated sign-in stays off and its domain unused.
        "REACT_APP_USER_POOL_DOMAIN": "",
        "REACT_APP_EGRESS_IG_ROLE": project["ig_reviewer_group"],
        "REACT_APP_EGRESS_RIT_ROLE": project["rit_reviewer_group"],
        "REACT_APP_MAX_DOWNLOADS_ALLOWED": str(project["max_downloads"]),
        "REACT_APP_FEDERATED_LOGIN_ENABLED": "false",
        "REACT_APP_REDIRECT_SIGNIN_URL": app_url,
        "REACT_APP_REDIRECT_SIGNOUT_URL": app_url,
        "REACT_APP_FEDERATED_LOGIN_BUTTON_VALUE": "",
        "REACT_APP_FEDERATED_IDENTITY_PROVIDER_NAME": "",
        COGNITO_ENDPOINT_VARIABLE: api["cognito_endpoint"],
    }


def deployed_values(cfn_outputs: list[dict]) -> dict[str, str]:
    """The values for a deployed stack, from its CloudFormation outputs."""
    out = {o["OutputKey"]: o["OutputValue"] for o in cfn_outputs}

    def need(key: str) -> str:
        if key not in out:
            raise WebAppEnvError(f"the stack outputs have no {key}; is this a stack of infra/template.yaml?")
        return out[key]

    federated = need("FederatedLogin").lower() == "true"
    return {
        "REACT_APP_APPSYNC_API": need("GraphQLApiUrl"),
        "REACT_APP_REGION": need("Region"),
        "REACT_APP_USER_POOL_ID": need("UserPoolId"),
        "REACT_APP_USER_POOL_CLIENT_ID": need("UserPoolClientId"),
        "REACT_APP_USER_POOL_DOMAIN": need("CognitoDomain"),
        "REACT_APP_EGRESS_IG_ROLE": need("IgReviewerGroupName"),
        "REACT_APP_EGRESS_RIT_ROLE": need("RitReviewerGroupName"),
        "REACT_APP_MAX_DOWNLOADS_ALLOWED": need("MaxDownloads"),
        "REACT_APP_FEDERATED_LOGIN_ENABLED": "true" if federated else "false",
        "REACT_APP_REDIRECT_SIGNIN_URL": need("WebAppUrl"),
        "REACT_APP_REDIRECT_SIGNOUT_URL": need("WebAppUrl"),
        "REACT_APP_FEDERATED_LOGIN_BUTTON_VALUE": "Sign in with your organisation" if federated else "",
        "REACT_APP_FEDERATED_IDENTITY_PROVIDER_NAME": out.get("IdentityProviderName", ""),
    }


def render(read: list[str], values: dict[str, str]) -> str:
    """The env file: every variable the app reads, then ours it does not read (harmless)."""
    missing = [name for name in read if name not in values]
    if missing:
        raise WebAppEnvError(
            "the web app reads variables this stack does not provide: " + ", ".join(missing)
        )
    lines = ["# Written by `make webapp-env`; rewritten on every run."]
    lines += [f"{name}={values[name]}" for name in read]
    lines += [f"{name}={value}" for name, value in values.items() if name not in read]
    return "\n".join(lines) + "\n"


def write(app: Path, values: dict[str, str]) -> list[Path]:
    text = render(variables_read(app), values)
    written = []
    for name in ENV_FILES:
        path = app / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def read_json(path: Path, what: str) -> dict | list:
    if not path.is_file():
        raise WebAppEnvError(f"{path} is missing: {what}")
    return json.loads(path.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", required=True, type=Path, help="the web app checkout")
    parser.add_argument("--cfn-outputs", type=Path, help="a deployed stack's outputs (JSON)")
    args = parser.parse_args(argv)
    try:
        if args.cfn_outputs:
            values = deployed_values(read_json(args.cfn_outputs, "the stack's outputs"))
        else:
            outputs = read_json(state_path("outputs.json"), "start the local stack: make stack-up api-up")
            api = read_json(state_path("api.json"), "start the reviewer API: make api-up")
            values = local_values(outputs, api)
        written = write(args.app, values)
    except WebAppEnvError as err:
        print(f"webapp-env: {err}", file=sys.stderr)
        return 2
    print("webapp-env: wrote " + ", ".join(str(p) for p in written))
    for name in variables_read(args.app):
        print(f"  {name}={values[name]}")
    url = values["REACT_APP_REDIRECT_SIGNIN_URL"] or "http://localhost:3000"
    print(f"Start the app: cd {args.app} && npm install && npm start   (serves {url})")
    print("  (not `npm run start:local`: it reads only the app's own .env.local placeholders)")
    if not args.cfn_outputs:
        print(
            "Local stack only: the app has no Cognito endpoint setting; add the one-line override\n"
            f"  Auth: {{ ..., endpoint: process.env.{COGNITO_ENDPOINT_VARIABLE} }}\n"
            "to its src/aws-config.js (README: 'The real web app against the local stack'), or its sign-in\n"
            "goes to AWS. Sign in with a user from .local-stack/api.json."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
