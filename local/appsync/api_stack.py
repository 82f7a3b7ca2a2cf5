"""The local reviewer API on top of a running local stack: Cognito users in moto and the
GraphQL endpoint (`server.mjs`).

    python local/appsync/api_stack.py up      # needs `make stack-up`; idempotent
    python local/appsync/api_stack.py down
    python local/appsync/api_stack.py status

`up` creates the reviewer user pool as the SAM template does (e-mail as username, the two
reviewer groups, a web client with the template's client settings), seeds one
user per role with a random password, starts the front door + AppSync simulator on
127.0.0.1:$EGRESS_API_PORT (default: the stack's edge port + 10) and writes
`.local-stack/api.json` (endpoint, pool, client, users and their passwords)
for the e2e tests and the demo. Everything it starts is stopped by `down` (and only that).

Run it with the stack's Python (`.venv/stack/bin/python`, which has boto3).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "local"))

from egress_local import stack, template  # noqa: E402  (the stack's process helpers)
from egress_local.provision import client  # noqa: E402
from egress_local.settings import state_path  # noqa: E402

NAME = "appsync"
POOL_NAME = "egress-local-reviewers"
CLIENT_NAME = "egress-local-web"
DOMAIN = "tre.example.org"
# The template's web app client when reviewers sign in to the pool itself (not federated):
# the one the local pool stands in for.
TEMPLATE_WEB_CLIENT = "ReviewerUserPoolClient"

# One user per role of the authorization matrix. The researcher is the SWB submitter of the
# simulator's requests (local/egress_local/swb.py) and is in both groups, so that separation
# of duties, not group membership, is what refuses them.
ROLES = {
    "ig": ("ig.reviewer", "Ivy Governance", ["ig"]),
    "ig2": ("ig.second", "Ian Governance", ["ig"]),
    "rit": ("rit.reviewer", "Rita Research-IT", ["rit"]),
    "both": ("both.reviewer", "Bo Both", ["ig", "rit"]),
    "researcher": ("researcher", "Rae Researcher", ["ig", "rit"]),
    "outsider": ("outsider", "Otto Outsider", []),
    # The TRE admin who may revoke a release (revokeRelease; AdminGroupName).
    "admin": ("egress.admin", "Ada Admin", ["admin"]),
}

# AdminGroupName's default, as the template's (a project may name another: `admin_group`).
DEFAULT_ADMIN_GROUP = "EgressAdmin"


def say(msg: str) -> None:
    print(f"[api] {msg}", flush=True)


def password() -> str:
    # Random per run (never in the repository); meets any Cognito password policy.
    return f"Lc-{secrets.token_urlsafe(18)}-9aZ"


def template_web_client(template_file: Path = template.TEMPLATE_FILE) -> dict:
    """The template's web app client settings (`template.CLIENT_SETTINGS`: allowed auth
    flows, token validity, read and write attributes), so the local client lets a user sign in
    and read or write exactly as the deployed one does (the edge router enforces the auth
    flows and the write list, which moto does not). A setting the template leaves out is left
    out here too (Cognito's default then applies)."""
    try:
        return template.client_settings(template.load(template_file), TEMPLATE_WEB_CLIENT)
    except template.TemplateError as exc:
        raise stack.StackError(f"{template_file}: {exc}") from exc


def create_web_client(idp, pool_id: str, settings: dict | None = None) -> dict:
    """Creates the local web app client with the template's settings; returns it as Cognito
    describes it."""
    return idp.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName=CLIENT_NAME,
        GenerateSecret=False,
        **(template_web_client() if settings is None else settings),
    )["UserPoolClient"]


def seed_cognito(outputs: dict) -> dict:
    """Creates the pool, the groups, the web client and the users; returns their details."""
    project = outputs["project"]
    groups = {
        "ig": project["ig_reviewer_group"],
        "rit": project["rit_reviewer_group"],
        "admin": project.get("admin_group", DEFAULT_ADMIN_GROUP),
    }
    idp = client("cognito-idp", outputs["endpoint"], outputs["region"])
    pool = idp.create_user_pool(
        PoolName=POOL_NAME,
        UsernameAttributes=["email"],
        AutoVerifiedAttributes=["email"],
        AdminCreateUserConfig={"AllowAdminCreateUserOnly": True},
        Schema=[
            {"Name": "email", "AttributeDataType": "String", "Required": True, "Mutable": True},
            {"Name": "name", "AttributeDataType": "String", "Required": False, "Mutable": True},
            {"Name": "idp_groups", "AttributeDataType": "String", "Mutable": True},
        ],
    )["UserPool"]
    pool_id = pool["Id"]
    for name in groups.values():
        idp.create_group(UserPoolId=pool_id, GroupName=name)
    web = create_web_client(idp, pool_id)
    users = {}
    for role, (local_part, display, member_of) in ROLES.items():
        email = f"{local_part}@{DOMAIN}"
        secret = password()
        created = idp.admin_create_user(
            UserPoolId=pool_id,
            Username=email,
            UserAttributes=[
                {"Name": "email", "Value": email},
                {"Name": "email_verified", "Value": "true"},
                {"Name": "name", "Value": display},
            ],
            MessageAction="SUPPRESS",
        )["User"]
        idp.admin_set_user_password(UserPoolId=pool_id, Username=email, Password=secret, Permanent=True)
        for g in member_of:
            idp.admin_add_user_to_group(UserPoolId=pool_id, Username=email, GroupName=groups[g])
        attrs = {a["Name"]: a["Value"] for a in created.get("Attributes", [])}
        users[role] = {
            "email": email,
            "password": secret,
            "name": display,
            "username": created["Username"],
            "sub": attrs.get("sub", created["Username"]),
            "groups": [groups[g] for g in member_of],
        }
    region = pool_id.split("_")[0]
    return {
        "web_client": {k: v for k, v in web.items() if k in template.CLIENT_SETTINGS},
        "user_pool_id": pool_id,
        "user_pool_arn": pool.get("Arn"),
        "client_id": web["ClientId"],
        "region": region,
        "issuer": f"https://cognito-idp.{region}.amazonaws.com/{pool_id}",
        "users": users,
        "groups": groups,
    }


def api_port(outputs: dict) -> int:
    raw = os.environ.get("EGRESS_API_PORT")
    return int(raw) if raw else int(outputs["ports"]["edge"]) + 10


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def up() -> int:
    outputs = stack.read_outputs()
    if outputs is None:
        raise stack.StackError("the local stack is not running: run `make stack-up` first")
    current = read_json(state_path("api.json"))
    proc = stack.Proc.load(NAME)
    if current and current.get("stack_id") == outputs["stack_id"] and proc and proc.alive() and healthy(current["health_url"]):
        say(f"already running at {current['graphql_url']}")
        return 0
    if proc is not None:
        say("stopping a reviewer API left from an earlier stack")
        stack.stop(proc)
    port = api_port(outputs)
    if not stack.port_free(port):
        raise stack.StackError(f"port {port} is in use by another process: stop it, or set EGRESS_API_PORT")
    node = shutil.which("node")
    if node is None:
        raise stack.StackError("node is not on PATH")
    if not (HERE / "node_modules" / "@aws-amplify" / "amplify-appsync-simulator").is_dir():
        raise stack.StackError("local/appsync/node_modules is missing: run `make api-setup`")

    say("seeding Cognito: reviewer pool, groups, web client, one user per role")
    cognito = seed_cognito(outputs)
    project = outputs["project"]
    env = {
        **stack.scrubbed_environ(),
        **outputs["aws_env"],
        "APPSYNC_HOST": "127.0.0.1",
        "APPSYNC_PORT": str(port),
        "COGNITO_USER_POOL_ID": cognito["user_pool_id"],
        "COGNITO_CLIENT_ID": cognito["client_id"],
        "COGNITO_ENDPOINT": outputs["endpoint"],
        "LAMBDA_ENDPOINT": outputs["endpoint"],
        "IG_REVIEWER_GROUP": project["ig_reviewer_group"],
        "RIT_REVIEWER_GROUP": project["rit_reviewer_group"],
        "DOWNLOAD_GROUPS": project.get("download_groups", ""),
        "ADMIN_GROUP": project.get("admin_group", DEFAULT_ADMIN_GROUP),
    }
    say(f"starting the reviewer API on 127.0.0.1:{port}")
    proc = stack.start(NAME, [node, str(HERE / "server.mjs")], env)
    health = f"http://127.0.0.1:{port}/health"
    deadline = time.monotonic() + 60
    while not healthy(health):
        if not proc.alive() or time.monotonic() > deadline:
            stack.stop(proc)
            raise stack.StackError(f"the reviewer API did not start; see {state_path('logs', NAME + '.log')}")
        time.sleep(0.2)
    api = {
        "stack_id": outputs["stack_id"],
        "graphql_url": f"http://127.0.0.1:{port}/graphql",
        "health_url": health,
        "cognito_endpoint": outputs["endpoint"],
        **cognito,
    }
    path = state_path("api.json")
    path.write_text(json.dumps(api, indent=2), encoding="utf-8")
    path.chmod(0o600)  # it holds the local users' passwords
    say(f"up: {api['graphql_url']} (users and pool in {path})")
    return 0


def down() -> int:
    proc = stack.Proc.load(NAME)
    if proc is None:
        say("not running")
    else:
        say(f"stopping the reviewer API (pid {proc.pid})")
        stack.stop(proc)
    state_path("api.json").unlink(missing_ok=True)
    return 0


def status() -> int:
    proc = stack.Proc.load(NAME)
    api = read_json(state_path("api.json"))
    if proc and proc.alive() and api and healthy(api["health_url"]):
        say(f"up: {api['graphql_url']}")
        return 0
    say("down")
    return 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="api_stack.py", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    try:
        return {"up": up, "down": down, "status": status}[args.command]()
    except stack.StackError as exc:
        print(f"[api] error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
