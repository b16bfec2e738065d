//! Plans (CONTRACT §5): what a user may do and how fast.
//!
//! Four plans are built in (`free`, `pro`, `enterprise`, `developer`). A
//! `plans.toml` (named by `TOLLGATE_PLANS_FILE`) may change them or add new
//! ones:
//!
//! ```toml
//! base_rate_per_minute = 60          # optional, default 60
//!
//! [plans.pro]                        # override: listed fields replace the built-in ones
//! rate_multiplier = 3
//!
//! [plans.team]                       # a new plan: every field but `permissions` required
//! rate_multiplier = 4
//! tools = ["search", "summarize", "code_interpreter"]
//! ws_connections = 20
//! permissions = ["export:csv"]       # extra permissions beyond `tool:*`
//! ```
//!
//! `all_tools = true` gives a plan every tool any plan names (the built-in
//! `developer` plan has it).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::Error;

/// The plan new users get.
pub const DEFAULT_PLAN: &str = "free";

/// Tool calls per minute at multiplier 1.
pub const DEFAULT_BASE_RATE_PER_MINUTE: u32 = 60;

/// Largest `permissions` claim a plan may give, in bytes of JSON: a quarter
/// of the validator's 8 KiB token limit once base64url-encoded, so that
/// with the other claims, the header and an RSA signature every token of
/// the plan stays well inside it. A plan over it would mint tokens every
/// validator refuses as too large.
pub const MAX_PERMISSIONS_CLAIM_BYTES: usize = 2048;

/// One plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Name, as in the tokens' `plan` claim.
    pub name: String,
    /// Multiplier of the base tool-call rate.
    pub rate_multiplier: u32,
    /// Tools (each gives the permission `tool:<name>`).
    pub tools: Vec<String>,
    /// Extra permissions beyond tools.
    pub extra_permissions: Vec<String>,
    /// Concurrent WebSocket connections per user.
    pub ws_connections: u32,
    /// Tool calls per minute (base rate × multiplier).
    pub rate_per_minute: u32,
}

impl Plan {
    /// The permissions this plan gives: `tool:<name>` for each tool, then the
    /// extra permissions.
    pub fn permissions(&self) -> Vec<String> {
        self.tools
            .iter()
            .map(|t| format!("tool:{t}"))
            .chain(self.extra_permissions.iter().cloned())
            .collect()
    }

    /// Whether the plan allows `tool`.
    pub fn allows_tool(&self, tool: &str) -> bool {
        self.tools.iter().any(|t| t == tool)
    }
}

/// The set of plans in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plans {
    by_name: BTreeMap<String, Plan>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanSpec {
    rate_multiplier: Option<u32>,
    tools: Option<Vec<String>>,
    #[serde(default)]
    all_tools: Option<bool>,
    ws_connections: Option<u32>,
    permissions: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlansFile {
    base_rate_per_minute: Option<u32>,
    #[serde(default)]
    plans: BTreeMap<String, PlanSpec>,
}

fn builtin_specs() -> BTreeMap<String, PlanSpec> {
    let spec = |m, tools: &[&str], all, ws| PlanSpec {
        rate_multiplier: Some(m),
        tools: Some(tools.iter().map(|t| t.to_string()).collect()),
        all_tools: Some(all),
        ws_connections: Some(ws),
        permissions: Some(Vec::new()),
    };
    let free = ["search", "summarize"];
    let pro = ["search", "summarize", "code_interpreter", "web_browse"];
    let enterprise = [
        "search",
        "summarize",
        "code_interpreter",
        "web_browse",
        "data_export",
    ];
    BTreeMap::from([
        ("free".to_owned(), spec(1, &free, false, 2)),
        ("pro".to_owned(), spec(2, &pro, false, 5)),
        ("enterprise".to_owned(), spec(10, &enterprise, false, 50)),
        ("developer".to_owned(), spec(10, &["debug"], true, 10)),
    ])
}

impl Plans {
    /// The built-in plans.
    pub fn builtin() -> Plans {
        Plans::resolve(builtin_specs(), DEFAULT_BASE_RATE_PER_MINUTE).unwrap_or_else(|_| Plans {
            by_name: BTreeMap::new(),
        })
    }

    /// The built-in plans with a `plans.toml` applied (see the module docs).
    pub fn from_toml(text: &str) -> Result<Plans, Error> {
        let file: PlansFile =
            toml::from_str(text).map_err(|e| Error::Plans(e.message().to_owned()))?;
        let mut specs = builtin_specs();
        for (name, over) in file.plans {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(Error::Plans(format!(
                    "plan name {name:?} must be letters, digits, `_` or `-`"
                )));
            }
            match specs.get_mut(&name) {
                Some(base) => {
                    if over.rate_multiplier.is_some() {
                        base.rate_multiplier = over.rate_multiplier;
                    }
                    if over.tools.is_some() {
                        base.tools = over.tools;
                    }
                    if over.all_tools.is_some() {
                        base.all_tools = over.all_tools;
                    }
                    if over.ws_connections.is_some() {
                        base.ws_connections = over.ws_connections;
                    }
                    if over.permissions.is_some() {
                        base.permissions = over.permissions;
                    }
                }
                None => {
                    for (field, present) in [
                        ("rate_multiplier", over.rate_multiplier.is_some()),
                        (
                            "tools",
                            over.tools.is_some() || over.all_tools == Some(true),
                        ),
                        ("ws_connections", over.ws_connections.is_some()),
                    ] {
                        if !present {
                            return Err(Error::Plans(format!("new plan `{name}` needs `{field}`")));
                        }
                    }
                    specs.insert(name, over);
                }
            }
        }
        Plans::resolve(
            specs,
            file.base_rate_per_minute
                .unwrap_or(DEFAULT_BASE_RATE_PER_MINUTE),
        )
    }

    fn resolve(specs: BTreeMap<String, PlanSpec>, base_rate: u32) -> Result<Plans, Error> {
        if base_rate == 0 {
            return Err(Error::Plans(
                "base_rate_per_minute must be at least 1".into(),
            ));
        }
        let every_tool: BTreeSet<String> = specs
            .values()
            .flat_map(|s| s.tools.iter().flatten().cloned())
            .collect();
        let mut by_name = BTreeMap::new();
        for (name, spec) in specs {
            let multiplier = spec.rate_multiplier.unwrap_or(1);
            if multiplier == 0 {
                return Err(Error::Plans(format!(
                    "plan `{name}`: rate_multiplier must be at least 1"
                )));
            }
            let mut tools: Vec<String> = if spec.all_tools == Some(true) {
                every_tool.iter().cloned().collect()
            } else {
                spec.tools.unwrap_or_default()
            };
            // Tools and permissions become the `permissions` claim, whose
            // strings may hold no control character: a plan the minter
            // would refuse at every login is refused here instead.
            if let Some(bad) = tools.iter().find(|t| {
                t.is_empty() || t.contains(char::is_whitespace) || crate::claims::has_control(t)
            }) {
                return Err(Error::Plans(format!(
                    "plan `{name}`: tool name {bad:?} is not valid"
                )));
            }
            if let Some(bad) = spec
                .permissions
                .iter()
                .flatten()
                .find(|p| p.is_empty() || crate::claims::has_control(p))
            {
                return Err(Error::Plans(format!(
                    "plan `{name}`: permission {bad:?} is not valid"
                )));
            }
            let mut seen = BTreeSet::new();
            tools.retain(|t| seen.insert(t.clone()));
            let plan = Plan {
                name: name.clone(),
                rate_multiplier: multiplier,
                tools,
                extra_permissions: spec.permissions.unwrap_or_default(),
                ws_connections: spec.ws_connections.unwrap_or(1),
                rate_per_minute: base_rate.saturating_mul(multiplier),
            };
            let claim = serde_json::to_string(&plan.permissions())
                .map_err(|_| Error::Plans(format!("plan `{name}`: permissions")))?;
            if claim.len() > MAX_PERMISSIONS_CLAIM_BYTES {
                return Err(Error::Plans(format!(
                    "plan `{name}`: its tools and permissions take {} bytes in every token, more than {MAX_PERMISSIONS_CLAIM_BYTES}; tokens would exceed the 8 KiB limit",
                    claim.len()
                )));
            }
            by_name.insert(name, plan);
        }
        if !by_name.contains_key(DEFAULT_PLAN) {
            return Err(Error::Plans("the `free` plan must exist".into()));
        }
        Ok(Plans { by_name })
    }

    /// The plan with this name.
    pub fn find(&self, name: &str) -> Option<&Plan> {
        self.by_name.get(name)
    }

    /// Whether a plan with this name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Every plan, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Plan> {
        self.by_name.values()
    }
}

impl Default for Plans {
    fn default() -> Self {
        Plans::builtin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_plans_match_the_contract() {
        let plans = Plans::builtin();
        let row = |name: &str| {
            let p = plans.find(name).unwrap();
            (p.rate_per_minute, p.ws_connections, p.permissions())
        };
        assert_eq!(
            row("free"),
            (
                60,
                2,
                vec!["tool:search".to_owned(), "tool:summarize".to_owned()]
            )
        );
        assert_eq!(row("pro").0, 120);
        assert_eq!(row("pro").2.len(), 4);
        assert_eq!(row("enterprise"), (600, 50, row("enterprise").2));
        assert!(row("enterprise").2.contains(&"tool:data_export".to_owned()));
        let dev = row("developer");
        assert_eq!((dev.0, dev.1), (600, 10));
        for tool in [
            "search",
            "summarize",
            "code_interpreter",
            "web_browse",
            "data_export",
            "debug",
        ] {
            assert!(dev.2.contains(&format!("tool:{tool}")), "{tool}");
        }
    }

    #[test]
    fn a_plans_file_overrides_and_adds() {
        let plans = Plans::from_toml(
            r#"
            base_rate_per_minute = 30
            [plans.pro]
            rate_multiplier = 3
            [plans.team]
            rate_multiplier = 4
            tools = ["search", "summarize", "search"]
            ws_connections = 20
            permissions = ["export:csv"]
            "#,
        )
        .unwrap();
        assert_eq!(plans.find("pro").unwrap().rate_per_minute, 90);
        assert_eq!(plans.find("pro").unwrap().tools.len(), 4);
        let team = plans.find("team").unwrap();
        assert_eq!(
            team.permissions(),
            ["tool:search", "tool:summarize", "export:csv"]
        );
        assert_eq!(plans.find("free").unwrap().rate_per_minute, 30);
    }

    #[test]
    fn plans_whose_tokens_would_be_too_large_are_refused() {
        // The `plans` fuzz target's oracle (a user token of every accepted
        // plan validates), on a hand-made 6 KB file of 900 tools: the plan
        // was accepted and every token of it refused as over 8 KiB. Through
        // `all_tools`, `developer` grew as large too.
        let tools: Vec<String> = (0..900).map(|i| format!("\"t{i}\"")).collect();
        let text = format!("[plans.pro]\ntools = [{}]\n", tools.join(","));
        let err = Plans::from_toml(&text).unwrap_err();
        assert!(err.to_string().contains("8 KiB"), "{err}");
        // A plan just under the limit is fine.
        let tools: Vec<String> = (0..150).map(|i| format!("\"t{i}\"")).collect();
        let text = format!("[plans.pro]\ntools = [{}]\n", tools.join(","));
        let plans = Plans::from_toml(&text).unwrap();
        let claim = serde_json::to_string(&plans.find("developer").unwrap().permissions());
        assert!(claim.unwrap().len() <= MAX_PERMISSIONS_CLAIM_BYTES);
    }

    #[test]
    fn bad_plans_files_are_refused_with_a_reason() {
        for (text, needle) in [
            ("[plans.team]\nrate_multiplier = 1", "needs `tools`"),
            ("[plans.pro]\nrate_multiplier = 0", "at least 1"),
            ("[plans.pro]\nspeed = 1", "unknown field"),
            ("[plans.\"a b\"]\nrate_multiplier = 1", "plan name"),
            ("base_rate_per_minute = 0", "at least 1"),
            ("[plans.pro]\ntools = [\"a b\"]", "not valid"),
            // Control characters: the minter would refuse every token of
            // the plan (the `plans` fuzz target's oracle).
            ("[plans.pro]\ntools = [\"a\\u0001b\"]", "not valid"),
            ("[plans.pro]\ntools = [\"a\\u007fb\"]", "not valid"),
            (
                "[plans.pro]\npermissions = [\"export\\u009b\"]",
                "not valid",
            ),
            ("[plans.pro]\npermissions = [\"\"]", "not valid"),
            ("not toml [", ""),
        ] {
            let err = Plans::from_toml(text).unwrap_err();
            assert_eq!(err.code(), "invalid_plans");
            assert!(err.to_string().contains(needle), "{text}: {err}");
        }
    }
}
