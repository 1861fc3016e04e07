//! Principals and their IAM identity policies, evaluated the way IAM evaluates them for the
//! actions qldb-local serves: an explicit Deny wins, otherwise an Allow is needed; `*` and
//! `?` wildcards in actions (case-insensitive) and resources (case-sensitive); `NotAction`
//! and `NotResource`. Conditions are refused when the policy is loaded rather than ignored,
//! so that no policy is silently read as more permissive than it is.
//!
//! No crate fits: the IAM crates on crates.io either parse only or pull in a whole
//! cloud SDK, and the part of IAM needed here is small.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value as Json;

/// One access key and what it may do.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// When set, requests must carry this `X-Amz-Security-Token` (temporary credentials).
    pub session_token: Option<String>,
    /// The principal's ARN, for error messages (`arn:aws:iam::<account>:user/<key id>`).
    pub arn: String,
    /// `None`: full access (the simple `--credentials` form).
    pub policies: Option<Vec<Policy>>,
}

impl Principal {
    /// What the principal's policies say about `action` (e.g. `qldb:GetDigest`) on
    /// `resource` (an ARN or `*`).
    pub fn decide(&self, action: &str, resource: &str) -> Decision {
        match &self.policies {
            None => Decision::Allow,
            Some(policies) => evaluate(policies, action, resource),
        }
    }

    pub fn is_allowed(&self, action: &str, resource: &str) -> bool {
        self.decide(action, resource) == Decision::Allow
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// No statement allows it.
    ImplicitDeny,
    /// A Deny statement matches.
    ExplicitDeny,
}

/// An identity policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub statements: Vec<Statement>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub allow: bool,
    /// Patterns of `Action`, or of `NotAction` when `not_action`.
    pub actions: Vec<String>,
    pub not_action: bool,
    pub resources: Vec<String>,
    pub not_resource: bool,
}

impl Statement {
    fn applies(&self, action: &str, resource: &str) -> bool {
        let action = action.to_ascii_lowercase();
        let a = self
            .actions
            .iter()
            .any(|p| wildcard_match(&p.to_ascii_lowercase(), &action));
        let r = self.resources.iter().any(|p| wildcard_match(p, resource));
        a != self.not_action && r != self.not_resource
    }
}

/// IAM's evaluation for one request: an explicit Deny wins, then any Allow.
pub fn evaluate(policies: &[Policy], action: &str, resource: &str) -> Decision {
    let mut allowed = false;
    for s in policies.iter().flat_map(|p| &p.statements) {
        if s.applies(action, resource) {
            if !s.allow {
                return Decision::ExplicitDeny;
            }
            allowed = true;
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

/// `*` matches any run of characters (also none), `?` exactly one.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Parses one policy document (the JSON IAM takes, or the same shape read from TOML).
pub fn parse_policy(doc: &Json) -> Result<Policy, String> {
    let Json::Object(map) = doc else {
        return Err("a policy document must be an object".into());
    };
    for key in map.keys() {
        if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
            return Err(format!("unknown policy element '{key}'"));
        }
    }
    match map.get("Version") {
        None => {}
        Some(Json::String(v)) if v == "2012-10-17" || v == "2008-10-17" => {}
        Some(v) => return Err(format!("unsupported policy Version {v}")),
    }
    let statements = match map.get("Statement") {
        Some(Json::Array(items)) => items.iter().map(parse_statement).collect(),
        Some(s @ Json::Object(_)) => parse_statement(s).map(|s| vec![s]),
        _ => Err("a policy needs a Statement (an object or a list of them)".into()),
    }?;
    Ok(Policy { statements })
}

fn strings(v: &Json, what: &str) -> Result<Vec<String>, String> {
    match v {
        Json::String(s) => Ok(vec![s.clone()]),
        Json::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| match i {
                Json::String(s) => Ok(s.clone()),
                _ => Err(format!("{what} must hold strings")),
            })
            .collect(),
        _ => Err(format!(
            "{what} must be a string or a non-empty list of strings"
        )),
    }
}

fn parse_statement(v: &Json) -> Result<Statement, String> {
    let Json::Object(map) = v else {
        return Err("a Statement must be an object".into());
    };
    for key in map.keys() {
        match key.as_str() {
            "Sid" | "Effect" | "Action" | "NotAction" | "Resource" | "NotResource" => {}
            "Condition" => {
                return Err("Condition is not supported by qldb-local; \
                            leave it out or split the statement"
                    .into())
            }
            "Principal" | "NotPrincipal" => {
                return Err(format!(
                    "{key} belongs in resource policies; identity policies cannot have it"
                ))
            }
            other => return Err(format!("unknown Statement element '{other}'")),
        }
    }
    let allow = match map.get("Effect") {
        Some(Json::String(e)) if e == "Allow" => true,
        Some(Json::String(e)) if e == "Deny" => false,
        _ => return Err("Effect must be \"Allow\" or \"Deny\"".into()),
    };
    let (actions, not_action) = match (map.get("Action"), map.get("NotAction")) {
        (Some(a), None) => (strings(a, "Action")?, false),
        (None, Some(a)) => (strings(a, "NotAction")?, true),
        _ => return Err("a Statement needs exactly one of Action and NotAction".into()),
    };
    let (resources, not_resource) = match (map.get("Resource"), map.get("NotResource")) {
        (Some(r), None) => (strings(r, "Resource")?, false),
        (None, Some(r)) => (strings(r, "NotResource")?, true),
        _ => return Err("a Statement needs exactly one of Resource and NotResource".into()),
    };
    Ok(Statement {
        allow,
        actions,
        not_action,
        resources,
        not_resource,
    })
}

/// One entry of a credentials file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    session_token: Option<String>,
    /// The principal's ARN (default `arn:aws:iam::<account>:user/<access_key_id>`).
    #[serde(default)]
    principal: Option<String>,
    /// Policy documents: objects, or JSON texts of them. Absent: full access.
    #[serde(default)]
    policies: Option<Vec<Json>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    credentials: Vec<FileEntry>,
}

/// Reads a credentials file: TOML when the name ends in `.toml`, JSON otherwise.
pub fn load_credentials_file(path: &Path, account_id: &str) -> Result<Vec<Principal>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read credentials file {}: {e}", path.display()))?;
    let toml = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    parse_credentials(&text, toml, account_id)
        .map_err(|e| format!("credentials file {}: {e}", path.display()))
}

/// Parses the text of a credentials file (see [`load_credentials_file`]).
pub fn parse_credentials(
    text: &str,
    toml: bool,
    account_id: &str,
) -> Result<Vec<Principal>, String> {
    let file: CredentialsFile = if toml {
        ::toml::from_str(text).map_err(|e| e.to_string())?
    } else {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    };
    let mut out: Vec<Principal> = Vec::new();
    for (i, e) in file.credentials.into_iter().enumerate() {
        let which = format!("credentials[{i}] ({})", e.access_key_id);
        if e.access_key_id.is_empty() || e.secret_access_key.is_empty() {
            return Err(format!(
                "{which}: access_key_id and secret_access_key must not be empty"
            ));
        }
        if out.iter().any(|p| p.access_key_id == e.access_key_id) {
            return Err(format!("{which}: the access key id appears twice"));
        }
        let policies = match e.policies {
            None => None,
            Some(docs) => Some(
                docs.iter()
                    .enumerate()
                    .map(|(j, d)| {
                        let parsed;
                        let d = match d {
                            Json::String(s) => {
                                parsed = serde_json::from_str::<Json>(s)
                                    .map_err(|err| format!("{which}: policy {j}: {err}"))?;
                                &parsed
                            }
                            d => d,
                        };
                        parse_policy(d).map_err(|err| format!("{which}: policy {j}: {err}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        out.push(Principal {
            arn: e
                .principal
                .unwrap_or_else(|| format!("arn:aws:iam::{account_id}:user/{}", e.access_key_id)),
            access_key_id: e.access_key_id,
            secret_access_key: e.secret_access_key,
            session_token: e.session_token,
            policies,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(v: Json) -> Policy {
        parse_policy(&v).unwrap()
    }

    const T1: &str = "arn:aws:qldb:us-east-1:000000000000:ledger/l/table/T1";
    const T2: &str = "arn:aws:qldb:us-east-1:000000000000:ledger/l/table/T2";

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*c", "abbbc"));
        assert!(wildcard_match("a*c", "ac"));
        assert!(!wildcard_match("a*c", "acb"));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(wildcard_match("*/table/*", T1));
        assert!(wildcard_match("a*b*c", "axxbyybzc"));
        assert!(!wildcard_match("abc", "abcd"));
        assert!(wildcard_match("**", "x"));
    }

    #[test]
    fn deny_beats_allow_and_default_is_implicit_deny() {
        let p = policy(json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "qldb:PartiQL*", "Resource": "*"},
            {"Effect": "Deny", "Action": ["qldb:PartiQLDelete"], "Resource": T1},
        ]}));
        let ps = [p];
        assert_eq!(evaluate(&ps, "qldb:PartiQLSelect", T1), Decision::Allow);
        assert_eq!(evaluate(&ps, "qldb:partiqlselect", T1), Decision::Allow);
        assert_eq!(
            evaluate(&ps, "qldb:PartiQLDelete", T1),
            Decision::ExplicitDeny
        );
        assert_eq!(evaluate(&ps, "qldb:PartiQLDelete", T2), Decision::Allow);
        assert_eq!(evaluate(&ps, "qldb:GetDigest", T1), Decision::ImplicitDeny);
        assert_eq!(evaluate(&[], "qldb:GetDigest", T1), Decision::ImplicitDeny);
    }

    #[test]
    fn not_action_and_not_resource() {
        let ps = [policy(json!({"Statement": {
            "Effect": "Allow", "NotAction": "qldb:Delete*", "NotResource": T2}}))];
        assert_eq!(evaluate(&ps, "qldb:DescribeLedger", T1), Decision::Allow);
        assert_eq!(
            evaluate(&ps, "qldb:DeleteLedger", T1),
            Decision::ImplicitDeny
        );
        assert_eq!(
            evaluate(&ps, "qldb:DescribeLedger", T2),
            Decision::ImplicitDeny
        );
        // Resources are case-sensitive.
        assert_eq!(
            evaluate(&ps, "qldb:DescribeLedger", &T2.to_lowercase()),
            Decision::Allow
        );
    }

    #[test]
    fn refuses_what_it_cannot_evaluate() {
        for bad in [
            json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*",
                                  "Condition": {"IpAddress": {"aws:SourceIp": "1.2.3.4/32"}}}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*",
                                  "Principal": "*"}]}),
            json!({"Statement": [{"Effect": "allow", "Action": "*", "Resource": "*"}]}),
            json!({"Statement": [{"Effect": "Allow", "Resource": "*"}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": "*", "NotAction": "x",
                                  "Resource": "*"}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": [], "Resource": "*"}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
                   "Version": "2020-01-01"}),
            json!({"Statment": []}),
            json!([]),
        ] {
            assert!(parse_policy(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_files_in_json_and_toml() {
        let json_text = r#"{"credentials": [
            {"access_key_id": "admin", "secret_access_key": "s1"},
            {"access_key_id": "reader", "secret_access_key": "s2", "session_token": "tok",
             "principal": "arn:aws:iam::000000000000:role/reader",
             "policies": [{"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "qldb:SendCommand", "Resource": "*"}]},
                "{\"Statement\": {\"Effect\": \"Deny\", \"Action\": \"*\", \"Resource\": \"x\"}}"]}
        ]}"#;
        let ps = parse_credentials(json_text, false, "000000000000").unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].policies, None);
        assert_eq!(ps[0].arn, "arn:aws:iam::000000000000:user/admin");
        assert!(ps[0].is_allowed("qldb:DeleteLedger", "*"));
        assert_eq!(ps[1].session_token.as_deref(), Some("tok"));
        assert!(ps[1].is_allowed("qldb:SendCommand", "arn:x"));
        assert!(!ps[1].is_allowed("qldb:SendCommand", "x"));

        let toml_text = r#"
            [[credentials]]
            access_key_id = "reader"
            secret_access_key = "s2"
            [[credentials.policies]]
            Version = "2012-10-17"
            [[credentials.policies.Statement]]
            Effect = "Allow"
            Action = ["qldb:SendCommand", "qldb:PartiQLSelect"]
            Resource = "*"
        "#;
        let ps = parse_credentials(toml_text, true, "123456789012").unwrap();
        assert_eq!(ps[0].arn, "arn:aws:iam::123456789012:user/reader");
        assert!(ps[0].is_allowed("qldb:PartiQLSelect", T1));
        assert!(!ps[0].is_allowed("qldb:PartiQLInsert", T1));

        for bad in [
            r#"{"credentials": [{"access_key_id": "a", "secret_access_key": ""}]}"#,
            r#"{"credentials": [{"access_key_id": "a", "secret_access_key": "b"},
                                {"access_key_id": "a", "secret_access_key": "c"}]}"#,
            r#"{"credentials": [{"access_key_id": "a", "secret_access_key": "b", "x": 1}]}"#,
            r#"{"credentials": [{"access_key_id": "a", "secret_access_key": "b",
                                 "policies": ["not json"]}]}"#,
        ] {
            assert!(
                parse_credentials(bad, false, "000000000000").is_err(),
                "{bad}"
            );
        }
    }
}
