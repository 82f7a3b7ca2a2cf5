//! The reviewer API over GraphQL, called exactly as the TREEHOOSE web app calls it.
//!
//! `make api-up` (local/appsync/api_stack.py) seeds Cognito users in the local stack's moto
//! and serves the API; it writes `.local-stack/api.json`, which [`Api::load`] reads. Sign-in
//! is Cognito's SRP sign-in (`USER_SRP_AUTH`, as the web app's Amplify does) against moto; the GraphQL documents are
//! the web app's own (src/graphql/queries.js and mutations.js of the TREEHOOSE frontend).
//! [`GraphQlDriver`] is the [`ReviewDriver`] that decides and downloads through the API.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{json, Value};
use shared::model::{Decision, ReviewStage};
use time::OffsetDateTime;

use crate::driver::{ReviewDriver, Reviewer};
use crate::stack::{http_get, state_dir};
use crate::{Context, Result};

/// The web app's `listRequests` query: all 29 fields.
pub const LIST_REQUESTS: &str = "query ListRequests {
  listRequests {
    egress_request_id egress_store_name swb_egress_store_id project_id workspace_id
    requested_by requested_dt updated_by updated_dt egress_status s3_egress_store_bucket
    s3_egress_store_bucket_path s3_egress_store_object_list_location
    s3_swb_object_metadata_version task_token ig_reviewer_1_name ig_reviewer_1_email
    ig_reviewer_1_dt ig_reviewer_1_reason ig_reviewer_1_decision rit_reviewer_2_name
    rit_reviewer_2_email rit_reviewer_2_dt rit_reviewer_2_reason rit_reviewer_2_decision
    current_reviewer_group s3_staging_object_metadata_version download_count
    is_single_approval_enabled
  }
}";

/// The web app's `updateRequest` mutation.
pub const UPDATE_REQUEST: &str = "mutation UpdateRequest($request: UpdateRequestInput!) {
  updateRequest(request: $request)
}";

/// The web app's `downloadData` mutation.
pub const DOWNLOAD_DATA: &str = "mutation DownloadData($request: DownloadDataInput!) {
  downloadData(request: $request) { presign_url }
}";

/// A seeded Cognito user.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiUser {
    /// E-mail (the sign-in name: the pool uses e-mail as username, like the deployed one).
    pub email: String,
    /// Random password of this stack run.
    pub password: String,
    /// Display name.
    pub name: String,
    /// Cognito username (the `sub`, since e-mail is an alias).
    pub username: String,
    /// Cognito `sub`.
    pub sub: String,
    /// Groups.
    pub groups: Vec<String>,
}

/// `.local-stack/api.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Api {
    /// The stack this API runs on.
    pub stack_id: String,
    /// `http://127.0.0.1:<port>/graphql`.
    pub graphql_url: String,
    /// Where Cognito (moto) answers.
    pub cognito_endpoint: String,
    /// The reviewer pool.
    pub user_pool_id: String,
    /// The web app's client.
    pub client_id: String,
    /// Region of the pool.
    pub region: String,
    /// Issuer of the pool's tokens.
    pub issuer: String,
    /// Users by role: `ig`, `ig2`, `rit`, `both`, `researcher`, `outsider`.
    pub users: HashMap<String, ApiUser>,
    /// The reviewer groups: `ig` and `rit`.
    pub groups: HashMap<String, String>,
}

/// A user's tokens.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// ID token.
    pub id: String,
    /// Access token: what the web app (Amplify) sends to AppSync.
    pub access: String,
}

/// A GraphQL answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: Value,
}

impl Answer {
    /// `data.<field>`, `Null` when absent.
    pub fn data(&self, field: &str) -> &Value {
        self.body
            .get("data")
            .and_then(|d| d.get(field))
            .unwrap_or(&Value::Null)
    }

    /// The first error's message, if any.
    pub fn error(&self) -> Option<String> {
        self.body
            .get("errors")
            .and_then(|e| e.get(0))
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// The first error's `errorType`, if any.
    pub fn error_type(&self) -> Option<String> {
        self.body
            .get("errors")
            .and_then(|e| e.get(0))
            .and_then(|e| e.get("errorType"))
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn post_json(url: &str, headers: &[(&str, &str)], body: &Value) -> Result<(u16, Value)> {
    let mut request = agent().post(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let mut response = request
        .send(body.to_string())
        .context(format!("POST {url}"))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .context(format!("reading the answer of POST {url}"))?;
    let value = serde_json::from_str(&text).context(format!(
        "POST {url} answered {status} with non-JSON: {text}"
    ))?;
    Ok((status, value))
}

impl Api {
    /// Reads `api.json` of the running API (`make api-up`).
    pub fn load() -> Result<Self> {
        let path = state_dir().join("api.json");
        let text = std::fs::read_to_string(&path).context(format!(
            "reading {} (is the reviewer API up? `make api-up`)",
            path.display()
        ))?;
        serde_json::from_str(&text).context(format!("parsing {}", path.display()))
    }

    /// A seeded user by role.
    pub fn user(&self, role: &str) -> Result<&ApiUser> {
        self.users
            .get(role)
            .context(format!("api.json has no user for role {role}"))
    }

    /// The seeded user with this e-mail.
    pub fn user_by_email(&self, email: &str) -> Result<&ApiUser> {
        self.users
            .values()
            .find(|u| u.email.eq_ignore_ascii_case(email))
            .context(format!("no seeded Cognito user has the e-mail {email}"))
    }

    /// Signs `user` in as the web app's client does (Amplify): `InitiateAuth` with
    /// `USER_SRP_AUTH`, then `RespondToAuthChallenge` with the `PASSWORD_VERIFIER` claim. The
    /// local Cognito (moto) does not check the SRP maths (nor so the password): the claim is
    /// well-formed but not derived from the password. The flow is what the template's client
    /// allows, and the edge router refuses any other.
    pub fn sign_in(&self, user: &ApiUser) -> Result<Tokens> {
        let challenge = self.cognito(
            "InitiateAuth",
            json!({
                "AuthFlow": "USER_SRP_AUTH",
                "ClientId": self.client_id,
                "AuthParameters": {"USERNAME": user.email, "SRP_A": srp_a(&user.email)},
            }),
        )?;
        let parameters = &challenge["ChallengeParameters"];
        let (Some("PASSWORD_VERIFIER"), Some(user_id), Some(secret_block)) = (
            challenge["ChallengeName"].as_str(),
            parameters["USER_ID_FOR_SRP"].as_str(),
            parameters["SECRET_BLOCK"].as_str(),
        ) else {
            return Err(anyhow::anyhow!(
                "signing in {} (USER_SRP_AUTH) did not ask for the password verifier: {challenge}",
                user.email
            ));
        };
        let body = self.cognito(
            "RespondToAuthChallenge",
            json!({
                "ChallengeName": "PASSWORD_VERIFIER",
                "ClientId": self.client_id,
                "Session": challenge["Session"],
                "ChallengeResponses": {
                    "USERNAME": user_id,
                    "PASSWORD_CLAIM_SECRET_BLOCK": secret_block,
                    "PASSWORD_CLAIM_SIGNATURE": password_claim_signature(user_id, secret_block),
                    "TIMESTAMP": srp_timestamp(OffsetDateTime::now_utc()),
                },
            }),
        )?;
        let result = body
            .get("AuthenticationResult")
            .context(format!("signing in {} failed: {body}", user.email))?;
        let token = |name: &str| {
            result
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .context(format!("no {name} for {}", user.email))
        };
        Ok(Tokens {
            id: token("IdToken")?,
            access: token("AccessToken")?,
        })
    }

    /// Posts a GraphQL document with `token` as the `Authorization` header (raw, as Amplify
    /// sends it), or without one.
    pub fn call(&self, token: Option<&str>, query: &str, variables: Value) -> Result<Answer> {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(token) = token {
            headers.push(("Authorization", token));
        }
        let (status, body) = post_json(
            &self.graphql_url,
            &headers,
            &json!({"query": query, "variables": variables}),
        )?;
        Ok(Answer { status, body })
    }

    /// `listRequests` with all 29 fields.
    pub fn list(&self, token: &str) -> Result<Vec<Value>> {
        let answer = self.call(Some(token), LIST_REQUESTS, json!({}))?;
        if let Some(error) = answer.error() {
            return Err(anyhow::anyhow!("listRequests failed: {error}"));
        }
        Ok(answer
            .data("listRequests")
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The `listRequests` row of one request.
    pub fn row(&self, token: &str, egress_request_id: &str) -> Result<Value> {
        self.list(token)?
            .into_iter()
            .find(|r| r["egress_request_id"] == egress_request_id)
            .context(format!("listRequests does not list {egress_request_id}"))
    }
}

impl Api {
    /// Calls a Cognito user-pool API action (`AdminRemoveUserFromGroup`...) on the local
    /// Cognito (moto), which does not check signatures; the answer's JSON body.
    pub fn cognito(&self, action: &str, body: Value) -> Result<Value> {
        let scope = format!(
            "AWS4-HMAC-SHA256 Credential=local/20240101/{}/cognito-idp/aws4_request, SignedHeaders=host, Signature=0",
            self.region
        );
        let target = format!("AWSCognitoIdentityProviderService.{action}");
        let (status, answer) = post_json(
            &self.cognito_endpoint,
            &[
                ("Content-Type", "application/x-amz-json-1.1"),
                ("X-Amz-Target", &target),
                ("Authorization", &scope),
            ],
            &body,
        )?;
        if status != 200 {
            return Err(anyhow::anyhow!(
                "Cognito {action} answered {status}: {answer}"
            ));
        }
        Ok(answer)
    }

    /// Creates a user of the pool with `attributes` (name → value, `email` included), a
    /// random password and membership of `groups`, ready to sign in: what the seeding does,
    /// for tests that change a user and must not disturb the seeded ones.
    pub fn create_user(&self, attributes: &[(&str, &str)], groups: &[&str]) -> Result<ApiUser> {
        let attr = |name: &str| {
            attributes
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        };
        let email = attr("email").context("create_user needs an email attribute")?;
        let password = format!("Lc-{}-9aZ", uuid_like());
        let created = self.cognito(
            "AdminCreateUser",
            json!({
                "UserPoolId": self.user_pool_id,
                "Username": email,
                "MessageAction": "SUPPRESS",
                "UserAttributes": attributes
                    .iter()
                    .map(|(n, v)| json!({"Name": n, "Value": v}))
                    .collect::<Vec<_>>(),
            }),
        )?;
        let user = &created["User"];
        let username = user["Username"]
            .as_str()
            .context("AdminCreateUser returned no Username")?
            .to_string();
        let sub = user["Attributes"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["Name"] == "sub"))
            .and_then(|x| x["Value"].as_str())
            .unwrap_or(&username)
            .to_string();
        self.cognito(
            "AdminSetUserPassword",
            json!({"UserPoolId": self.user_pool_id, "Username": username, "Password": password, "Permanent": true}),
        )?;
        for group in groups {
            self.add_to_group(&username, group)?;
        }
        Ok(ApiUser {
            email,
            password,
            name: attr("name").unwrap_or_default(),
            username,
            sub,
            groups: groups.iter().map(|g| g.to_string()).collect(),
        })
    }

    /// `AdminAddUserToGroup`.
    pub fn add_to_group(&self, username: &str, group: &str) -> Result<()> {
        self.cognito(
            "AdminAddUserToGroup",
            json!({"UserPoolId": self.user_pool_id, "Username": username, "GroupName": group}),
        )
        .map(|_| ())
    }

    /// `AdminRemoveUserFromGroup`: the user's tokens keep naming the group until they expire.
    pub fn remove_from_group(&self, username: &str, group: &str) -> Result<()> {
        self.cognito(
            "AdminRemoveUserFromGroup",
            json!({"UserPoolId": self.user_pool_id, "Username": username, "GroupName": group}),
        )
        .map(|_| ())
    }
}

/// A random hex string for test-only passwords and names.
pub fn uuid_like() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    for _ in 0..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            OffsetDateTime::now_utc()
                .unix_timestamp_nanos()
                .unsigned_abs(),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// `new Date().toUTCString()`: `Fri, 03 May 2024 12:00:00 GMT`.
pub fn utc_string(t: OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&format).unwrap_or_default()
}

/// The `request` variable the web app sends for a decision on `row`, as the role it picked
/// from its groups (`reviewer_1` = IG, else RIT): its own name, e-mail and date, and at the
/// second stage the first-stage decision it read.
pub fn web_app_decision(
    row: &Value,
    as_stage: ReviewStage,
    user: &ApiUser,
    decision: Decision,
    reason: &str,
) -> Value {
    let now = utc_string(OffsetDateTime::now_utc());
    match as_stage {
        ReviewStage::Ig => json!({
            "egress_request_id": row["egress_request_id"],
            "task_token": row["task_token"],
            "ig_reviewer_1_decision": decision.as_str(),
            "ig_reviewer_1_reason": reason,
            "ig_reviewer_1_email": user.email,
            "ig_reviewer_1_name": user.email,
            "ig_reviewer_1_dt": now,
        }),
        ReviewStage::Rit => json!({
            "egress_request_id": row["egress_request_id"],
            "task_token": row["task_token"],
            "ig_reviewer_1_decision": row["ig_reviewer_1_decision"],
            "rit_reviewer_2_decision": decision.as_str(),
            "rit_reviewer_2_reason": reason,
            "rit_reviewer_2_email": user.email,
            "rit_reviewer_2_name": user.email,
            "rit_reviewer_2_dt": now,
        }),
    }
}

/// The `request` variable the web app sends to download: it echoes `download_count` as it
/// last saw it (our API always lists it as a string).
pub fn web_app_download(row: &Value) -> Value {
    json!({
        "egress_request_id": row["egress_request_id"],
        "workspace_id": row["workspace_id"],
        "download_count": row["download_count"],
    })
}

/// The private key moto signs Cognito tokens with (it ships in the moto package), for tests
/// that need correctly signed but otherwise invalid tokens.
pub fn moto_signing_key(stack_python: &str) -> Result<String> {
    let out = std::process::Command::new(stack_python)
        .args([
            "-c",
            "import moto, os; print(os.path.join(os.path.dirname(moto.__file__), 'cognitoidp', 'resources', 'jwks-private.json.gz'))",
        ])
        .output()
        .context("locating moto's signing key")?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || !Path::new(&path).exists() {
        return Err(anyhow::anyhow!("moto's signing key not found ({path})"));
    }
    Ok(path)
}

/// A token with `claims`, signed with moto's key (`local/appsync/tools/mint-token.mjs`).
pub fn mint_token(key_file: &str, claims: &Value) -> Result<String> {
    let tool = crate::stack::repo_root().join("local/appsync/tools/mint-token.mjs");
    let out = std::process::Command::new("node")
        .arg(tool)
        .arg(key_file)
        .arg(claims.to_string())
        .output()
        .context("running mint-token.mjs")?;
    if !out.status.success() {
        return Err(anyhow::anyhow!(
            "mint-token.mjs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The claims of a JWT (not verified: for building variants of a real token in tests).
pub fn claims_of(token: &str) -> Result<Value> {
    let payload = token.split('.').nth(1).context("not a JWT")?;
    let bytes = base64url_decode(payload).context("JWT payload is not base64url")?;
    serde_json::from_slice(&bytes).context("JWT payload is not JSON")
}

fn base64url_decode(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in input.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            b'=' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Reviewers act through the GraphQL API with their own Cognito sign-in, sending exactly what
/// the web app sends.
#[derive(Debug, Clone)]
pub struct GraphQlDriver {
    api: Api,
}

impl GraphQlDriver {
    /// A driver for the running API (`make api-up`).
    pub fn connect() -> Result<Self> {
        Ok(Self { api: Api::load()? })
    }

    /// The API.
    pub fn api(&self) -> &Api {
        &self.api
    }
}

impl ReviewDriver for GraphQlDriver {
    async fn decide(
        &self,
        egress_request_id: &str,
        reviewer: &Reviewer,
        decision: Decision,
        reason: &str,
    ) -> Result<()> {
        let user = self.api.user_by_email(&reviewer.email)?;
        let tokens = self.api.sign_in(user)?;
        let row = self.api.row(&tokens.access, egress_request_id)?;
        // The web app picks its role from the groups: IG when in the IG group, else RIT.
        let ig_group = self
            .api
            .groups
            .get("ig")
            .context("api.json names no IG group")?;
        let stage = if user.groups.contains(ig_group) {
            ReviewStage::Ig
        } else {
            ReviewStage::Rit
        };
        let variables = json!({"request": web_app_decision(&row, stage, user, decision, reason)});
        let answer = self
            .api
            .call(Some(&tokens.access), UPDATE_REQUEST, variables)?;
        match answer.error() {
            None => Ok(()),
            Some(error) => Err(anyhow::anyhow!("updateRequest refused: {error}")),
        }
    }

    async fn download(&self, egress_request_id: &str, reviewer: &Reviewer) -> Result<Vec<u8>> {
        let user = self.api.user_by_email(&reviewer.email)?;
        let tokens = self.api.sign_in(user)?;
        let row = self.api.row(&tokens.access, egress_request_id)?;
        let answer = self.api.call(
            Some(&tokens.access),
            DOWNLOAD_DATA,
            json!({"request": web_app_download(&row)}),
        )?;
        if let Some(error) = answer.error() {
            return Err(anyhow::anyhow!("downloadData refused: {error}"));
        }
        let url = answer.data("downloadData")["presign_url"]
            .as_str()
            .context("downloadData returned no presign_url")?
            .to_string();
        http_get(&url)
    }
}

/// An SRP `A` value as Amplify sends it (hex of a large number). Not derived from a secret:
/// the local Cognito does not check it.
fn srp_a(seed: &str) -> String {
    use sha2::{Digest, Sha256};
    (0..12u8)
        .map(|i| hex::encode(Sha256::digest(format!("{seed}:{i}").as_bytes())))
        .collect()
}

/// A `PASSWORD_CLAIM_SIGNATURE`: base64 of an HMAC-SHA256-sized value, as Amplify sends it.
fn password_claim_signature(user_id: &str, secret_block: &str) -> String {
    use sha2::{Digest, Sha256};
    base64(&Sha256::digest(
        format!("{user_id}{secret_block}").as_bytes(),
    ))
}

/// The `TIMESTAMP` of an SRP claim in Amplify's format (`Tue Dec 1 21:05:45 UTC 2026`).
fn srp_timestamp(now: OffsetDateTime) -> String {
    let now = now.to_offset(time::UtcOffset::UTC);
    let weekday = &now.weekday().to_string()[..3];
    let month = &now.month().to_string()[..3];
    format!(
        "{weekday} {month} {} {:02}:{:02}:{:02} UTC {}",
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.year()
    )
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod srp_tests {
    use super::*;

    #[test]
    fn when_bytes_are_encoded_then_base64_is_standard_with_padding() {
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
    }

    #[test]
    fn when_a_claim_is_timestamped_then_the_format_is_amplifys() {
        let t = time::macros::datetime!(2026-12-01 21:05:45 UTC);
        assert_eq!(srp_timestamp(t), "Tue Dec 1 21:05:45 UTC 2026");
    }
}
